use super::line_chart::{LineChart, Series};
use super::{on_input_value, opt3, use_store};
use crate::engine::{self, Job, RunEvent, Start};
use crate::state::{Action, RunKind, RunStatus};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

/// Fine-tuning controls (epochs, learning rate; start, pause/resume, step, reset), progress, and the
/// live loss and held-out-seed AUC curves.
#[function_component(TrainPanel)]
pub fn train_panel() -> Html {
    let store = use_store();
    let run = store.run(RunKind::Main).cloned();
    let status = run.as_ref().map_or(RunStatus::Idle, |r| r.status.clone());
    let ready = store.plan.is_some() && store.assets.is_some();
    let launch = {
        let store = store.clone();
        move |paused: bool| {
            let Some(assets) = store.assets.clone() else {
                return;
            };
            let Some(job) = Job::from_state(
                &store,
                RunKind::Main,
                store.next_generation,
                Start::Record(assets.record.clone()),
                store.choice,
                true,
                paused,
            ) else {
                return;
            };
            let dispatch = store.dispatcher();
            job.queue(&dispatch);
            spawn_local(engine::run(job, dispatch));
        }
    };
    let start = {
        let launch = launch.clone();
        Callback::from(move |_| launch(false))
    };
    let generation = run.as_ref().map_or(0, |r| r.generation);
    let pause = {
        let dispatch = store.dispatcher();
        Callback::from(move |_| {
            if let Some(c) = engine::control(RunKind::Main) {
                let p = !c.borrow().paused;
                c.borrow_mut().paused = p;
                dispatch.dispatch(Action::Run {
                    kind: RunKind::Main,
                    generation,
                    event: RunEvent::Paused(p),
                });
            }
        })
    };
    let step = {
        let dispatch = store.dispatcher();
        let status = status.clone();
        Callback::from(move |_| match &status {
            RunStatus::Running | RunStatus::Paused => {
                if let Some(c) = engine::control(RunKind::Main) {
                    let mut c = c.borrow_mut();
                    c.paused = true;
                    c.step_credit += 1;
                }
                dispatch.dispatch(Action::Run {
                    kind: RunKind::Main,
                    generation,
                    event: RunEvent::Paused(true),
                });
            }
            RunStatus::Starting | RunStatus::Scoring { .. } => {}
            _ => launch(true),
        })
    };
    let reset = {
        let dispatch = store.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::ResetRun(RunKind::Main)))
    };
    let epochs: Callback<Event> = on_input_value(store.dispatcher(), Action::SetEpochs);
    let lr: Callback<Event> = on_input_value(store.dispatcher(), Action::SetLr);
    let active = status.active();
    let (done_steps, total) = run.as_ref().map_or((0, 0), |r| {
        (r.losses.last().map_or(0, |l| l.0), r.total_steps)
    });
    let progress = match &status {
        RunStatus::Scoring { done, total } => format!("scoring the pool: {done} / {total} users"),
        RunStatus::Failed(e) => format!("failed: {e}"),
        RunStatus::Idle => "not started".to_string(),
        RunStatus::Starting => "loading the model onto the device…".to_string(),
        s => {
            let r = run.as_ref().expect("a run");
            format!(
                "{}: step {done_steps} / {total}, epoch {} of at most {}{}",
                s.name(),
                (r.epoch + 1).min(store.epochs),
                store.epochs,
                r.steps_per_second
                    .map_or(String::new(), |v| format!(", {v:.2} steps/s"))
            )
        }
    };
    let frac = if total > 0 {
        done_steps as f64 / total as f64
    } else {
        0.0
    };
    let charts = run.as_ref().map(|r| {
        let loss = vec![Series {
            name: "training loss (BCE)".into(),
            color: RunKind::Main.color().into(),
            points: r.losses.iter().map(|&(s, l)| (s as f64, l as f64)).collect(),
        }];
        let auc = vec![Series {
            name: "held-out seeds AUC".into(),
            color: "#059669".into(),
            points: r.aucs.iter().map(|&(s, a)| (s as f64, a)).collect(),
        }];
        html! {
            <div class="charts">
                <LineChart id="loss-chart" title="Loss per step" series={loss} x_label="step" y_range={None::<(f64, f64)>}/>
                <LineChart id="auc-chart" title="Can it find seeds it never saw? (held-out AUC)" series={auc} x_label="step" y_range={Some((0.5, 1.0))}/>
            </div>
        }
    });
    let notes = run.as_ref().map(|r| {
        html! {
            <>
                if let Some(rule) = &r.rule {
                    <p id="rule-note" class="explain">{rule.clone()}</p>
                }
                if let Some(stop) = &r.stop {
                    <p id="stop-note">{format!("Fine-tuning {stop}.")}</p>
                }
            </>
        }
    });
    let summary = run.as_ref().and_then(|r| {
        r.train_seconds.map(|t| html! {
            <p id="train-summary">{format!(
                "Fine-tuned in {t:.1} s on {}; held-out seeds AUC {} → {}{}",
                r.backend,
                opt3(r.aucs.first().map(|a| a.1)),
                opt3(r.aucs.last().map(|a| a.1)),
                r.truth_auc.map_or(String::new(), |a| format!("; AUC on the campaign's real converters (stage-2 labels) {a:.3}"))
            )}</p>
        })
    });
    html! {
        <section id="train">
            <h2>{"Fine-tune on your seeds"}</h2>
            <p class="explain">{"The general model adapts to this campaign: seeds are positives, users sampled from the rest of the pool are negatives, first the wide part (one weight per user token) is fitted to them in one go, then Adam fine-tunes everything until a held-out fifth of the rows stops improving (at most the epochs below), and finally what the held-out rows chose (the wide part's strength, the number of steps) is refitted on all rows. Some other seeds are held out of everything: the green curve shows how well the model ranks them above random users (AUC, 0.5 = chance)."}</p>
            <div class="controls">
                <label>{"epochs "}<input type="number" id="epochs" min="1" max="50" value={store.epochs.to_string()} onchange={epochs} disabled={active}/></label>
                <label>{"learning rate "}<input type="number" id="lr" min="0.00001" max="0.1" step="0.0001" value={store.lr.to_string()} onchange={lr}/></label>
                <button id="btn-start" class="primary" onclick={start} disabled={!ready || active}>{"Start"}</button>
                <button id="btn-pause" onclick={pause} disabled={!matches!(status, RunStatus::Running | RunStatus::Paused)}>
                    {if status == RunStatus::Paused { "Resume" } else { "Pause" }}</button>
                <button id="btn-step" onclick={step} disabled={!ready || matches!(status, RunStatus::Starting | RunStatus::Scoring { .. })}>{"Step"}</button>
                <button id="btn-reset" onclick={reset} disabled={run.is_none()}>{"Reset"}</button>
            </div>
            if !ready {
                <p class="muted">{"Give a seed list first."}</p>
            }
            <div class="progress"><div class="bar" style={format!("width:{:.1}%", frac * 100.0)}></div></div>
            <p id="run-status" data-status={status.name()} data-steps={done_steps.to_string()}>{progress}</p>
            {notes.unwrap_or_default()}
            {summary.unwrap_or_default()}
            {charts.unwrap_or_default()}
        </section>
    }
}
