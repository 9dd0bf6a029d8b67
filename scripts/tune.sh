#!/usr/bin/env bash
# Chooses hyper-parameters by validation, never by test campaigns: for every prepared world given and
# every candidate setting, `lookalike pretrain` (product schedule) reports the best mean AUC after
# fine-tuning on its held-out *training* campaigns; this prints one row per setting with that AUC per
# world. usage: scripts/tune.sh WORLD.lkd [WORLD.lkd …]
# env: LOOKALIKE (binary), SETTINGS (a file of candidate settings, one line of pretrain flags each; an
# empty line is the defaults), COMMON (flags added to every run, e.g. "--max-iterations 200").
set -euo pipefail
bin="${LOOKALIKE:-target/release/lookalike}"
settings=(
    ""
    "--embed-dim 16"
    "--embed-init-std 0.1"
    "--embed-dim 16 --embed-init-std 0.1"
    "--embed-dim 16 --embed-init-std 0.1 --outer-lr 3e-3"
    "--embed-dim 16 --embed-init-std 0.1 --finetune-lr 3e-3"
)
if [[ -n "${SETTINGS:-}" ]]; then
    mapfile -t settings <"$SETTINGS"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '| setting |'
for w in "$@"; do printf ' %s |' "$(basename "$w" .lkd)"; done
printf ' seconds |\n|---|'
for _ in "$@"; do printf -- '---|'; done
printf -- '---|\n'
for s in "${settings[@]}"; do
    printf '| `%s` |' "${s:-defaults}"
    start=$SECONDS
    for w in "$@"; do
        # shellcheck disable=SC2086
        auc=$("$bin" pretrain --data "$w" --out "$tmp/m.rec" ${COMMON:-} $s 2>/dev/null |
            sed -n 's/.*validation mean AUC \([0-9.]*\).*/\1/p')
        printf ' %s |' "${auc:--}"
    done
    printf ' %s |\n' $((SECONDS - start))
done
