"""Schema and migrations.

Migrations are append-only, named, and applied in order on every open, each in its own
transaction, and recorded in ``schema_migrations``: a new file and an old one take the
same path. Never edit a migration that has shipped; add the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparring.store import db

log = logging.getLogger(__name__)

M001_INITIAL = """
CREATE TABLE IF NOT EXISTS agents (
    name          TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    temperature   DOUBLE,
    api_base      TEXT,
    api_key_env   TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS scale_runs (
    run_id         TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    config         JSON NOT NULL,
    runs_per_cell  INTEGER NOT NULL,
    total_battles  INTEGER NOT NULL,
    budget_usd     DOUBLE,
    status         TEXT NOT NULL,
    error          TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS battles (
    battle_id           TEXT PRIMARY KEY,
    run_id              TEXT,
    cell_key            TEXT,
    cell_index          INTEGER,
    replicate           INTEGER,
    agent_profile       TEXT,
    agent_model         TEXT NOT NULL,
    agent_system_prompt TEXT NOT NULL,
    agent_temperature   DOUBLE,
    agent_api_base      TEXT,
    agent_api_key_env   TEXT,
    adversary_model     TEXT NOT NULL,
    adversary_strategy  TEXT NOT NULL,
    adversary_persona   TEXT,
    goal                TEXT NOT NULL,
    judge_model         TEXT NOT NULL,
    judge_rubric        TEXT,
    max_messages        INTEGER NOT NULL,
    time_limit_s        DOUBLE NOT NULL,
    seed                BIGINT NOT NULL,
    status              TEXT NOT NULL,
    outcome             TEXT,
    error               TEXT,
    error_kind          TEXT,
    message_count       INTEGER NOT NULL DEFAULT 0,
    agent_turns         INTEGER NOT NULL DEFAULT 0,
    turns_to_goal       INTEGER,
    prompt_tokens       BIGINT NOT NULL DEFAULT 0,
    completion_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd            DOUBLE NOT NULL DEFAULT 0,
    model_calls         INTEGER NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    battle_id         TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    role              TEXT NOT NULL,
    content           TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms        DOUBLE NOT NULL,
    cost_usd          DOUBLE,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (battle_id, seq)
);

CREATE TABLE IF NOT EXISTS verdicts (
    battle_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    achieved    BOOLEAN,
    confidence  DOUBLE,
    rationale   TEXT NOT NULL,
    judge_model TEXT NOT NULL,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (battle_id, seq)
);

CREATE TABLE IF NOT EXISTS llm_calls (
    call_id           TEXT PRIMARY KEY,
    battle_id         TEXT,
    run_id            TEXT,
    seq               INTEGER,
    purpose           TEXT NOT NULL,
    model             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    latency_ms        DOUBLE NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd          DOUBLE,
    error_type        TEXT,
    error             TEXT,
    http_status       INTEGER
);

CREATE TABLE IF NOT EXISTS battle_events (
    event_id  TEXT PRIMARY KEY,
    battle_id TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    event     TEXT NOT NULL,
    detail    TEXT
);

CREATE TABLE IF NOT EXISTS run_reports (
    run_id     TEXT PRIMARY KEY,
    summary    TEXT NOT NULL,
    stats      JSON NOT NULL,
    model      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
"""


# Views answer the common questions directly; the app, the CLI and notebooks all read
# them, so they can never disagree. Success rates count only *defended* battles
# (achieved or held): a battle that failed for infrastructure reasons, timed out or was
# cancelled says nothing about the agent and is reported separately.
M002_VIEWS = """
CREATE OR REPLACE MACRO wilson_low(s, n) AS CASE WHEN n > 0 THEN
    ((s / n) + 3.841458820694124 / (2 * n)
     - 1.959963984540054 * sqrt((s / n) * (1 - s / n) / n + 3.841458820694124 / (4 * n * n)))
    / (1 + 3.841458820694124 / n) END;

CREATE OR REPLACE MACRO wilson_high(s, n) AS CASE WHEN n > 0 THEN
    ((s / n) + 3.841458820694124 / (2 * n)
     + 1.959963984540054 * sqrt((s / n) * (1 - s / n) / n + 3.841458820694124 / (4 * n * n)))
    / (1 + 3.841458820694124 / n) END;

CREATE OR REPLACE VIEW battle_outcomes AS
SELECT battle_id, run_id, cell_key, cell_index, replicate,
       agent_profile, agent_model, adversary_model, adversary_strategy AS strategy, adversary_persona AS persona,
       goal, judge_model, max_messages, seed, status, outcome, error_kind, error,
       coalesce(outcome IN ('achieved', 'held'), false) AS defended,
       coalesce(outcome = 'achieved', false) AS achieved,
       message_count, agent_turns, turns_to_goal,
       prompt_tokens, completion_tokens, prompt_tokens + completion_tokens AS tokens,
       cost_usd, model_calls, attempts, created_at, started_at, ended_at,
       date_diff('millisecond', started_at, coalesce(ended_at, now())) / 1000.0 AS duration_s
FROM battles;

CREATE OR REPLACE VIEW run_cells AS
WITH cells AS (
    SELECT run_id, cell_key,
           min(cell_index) AS cell_index,
           any_value(agent_profile) AS agent_profile,
           any_value(agent_model) AS agent_model,
           any_value(adversary_model) AS adversary_model,
           any_value(strategy) AS strategy,
           any_value(goal) AS goal,
           any_value(judge_model) AS judge_model,
           count(*) AS battles,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'finished') AS finished,
           count(*) FILTER (WHERE defended) AS n,
           count(*) FILTER (WHERE outcome = 'achieved') AS achieved,
           count(*) FILTER (WHERE outcome = 'held') AS held,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           median(turns_to_goal) FILTER (WHERE outcome = 'achieved') AS median_turns_to_goal,
           quantile_cont(turns_to_goal, 0.9) FILTER (WHERE outcome = 'achieved') AS p90_turns_to_goal,
           sum(tokens)::BIGINT AS tokens,
           sum(cost_usd) AS cost_usd,
           avg(cost_usd) FILTER (WHERE status = 'finished') AS cost_per_battle_usd,
           avg(tokens) FILTER (WHERE status = 'finished') AS tokens_per_battle
    FROM battle_outcomes
    WHERE run_id IS NOT NULL
    GROUP BY run_id, cell_key
)
SELECT *,
       CASE WHEN n > 0 THEN achieved / n END AS rate,
       wilson_low(achieved, n) AS ci_low,
       wilson_high(achieved, n) AS ci_high,
       CASE WHEN finished > 0 THEN failed / finished END AS error_rate
FROM cells;

CREATE OR REPLACE VIEW run_summary AS
SELECT r.run_id, r.name, r.status, r.runs_per_cell, r.total_battles, r.budget_usd, r.error,
       r.created_at, r.finished_at,
       count(b.battle_id) AS battles,
       count(*) FILTER (WHERE b.status = 'queued') AS queued,
       count(*) FILTER (WHERE b.status = 'running') AS running,
       count(*) FILTER (WHERE b.status = 'finished') AS finished,
       count(*) FILTER (WHERE b.outcome = 'achieved') AS achieved,
       count(*) FILTER (WHERE b.outcome = 'held') AS held,
       count(*) FILTER (WHERE b.outcome = 'failed') AS failed,
       count(*) FILTER (WHERE b.outcome = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE b.outcome = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE b.defended) AS n,
       CASE WHEN count(*) FILTER (WHERE b.defended) > 0
            THEN count(*) FILTER (WHERE b.outcome = 'achieved') / count(*) FILTER (WHERE b.defended) END AS rate,
       wilson_low(count(*) FILTER (WHERE b.outcome = 'achieved'), count(*) FILTER (WHERE b.defended)) AS ci_low,
       wilson_high(count(*) FILTER (WHERE b.outcome = 'achieved'), count(*) FILTER (WHERE b.defended)) AS ci_high,
       coalesce(sum(b.cost_usd), 0) AS cost_usd,
       coalesce(sum(b.tokens), 0)::BIGINT AS tokens
FROM scale_runs r LEFT JOIN battle_outcomes b ON b.run_id = r.run_id
GROUP BY ALL;

CREATE OR REPLACE VIEW run_survival AS
WITH b AS (
    SELECT run_id, cell_key,
           CASE WHEN outcome = 'achieved' THEN turns_to_goal ELSE agent_turns END AS t,
           coalesce(outcome = 'achieved', false) AS event
    FROM battle_outcomes
    WHERE run_id IS NOT NULL AND status = 'finished'
),
steps AS (
    SELECT run_id, cell_key, t AS turn,
           count(*) FILTER (WHERE event) AS events,
           count(*) FILTER (WHERE NOT event) AS censored
    FROM b GROUP BY ALL
),
grid AS (
    SELECT run_id, cell_key, unnest(range(0, last_turn + 1)) AS turn
    FROM (SELECT run_id, cell_key, max(t) AS last_turn FROM b GROUP BY run_id, cell_key)
),
joined AS (
    SELECT g.run_id, g.cell_key, g.turn,
           coalesce(s.events, 0) AS events, coalesce(s.censored, 0) AS censored
    FROM grid g LEFT JOIN steps s ON s.run_id = g.run_id AND s.cell_key = g.cell_key AND s.turn = g.turn
),
risk AS (
    SELECT *, sum(events + censored) OVER (
               PARTITION BY run_id, cell_key ORDER BY turn DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS at_risk
    FROM joined
)
SELECT run_id, cell_key, turn, at_risk::BIGINT AS at_risk, events, censored,
       product(CASE WHEN at_risk > 0 THEN 1 - events / at_risk ELSE 1 END) OVER (
           PARTITION BY run_id, cell_key ORDER BY turn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
       ) AS survival
FROM risk;

CREATE OR REPLACE VIEW model_calls AS
SELECT run_id, model, provider, purpose,
       count(*) AS calls,
       count(*) FILTER (WHERE error_type IS NOT NULL) AS errors,
       count(*) FILTER (WHERE error_type = 'rate_limited') AS rate_limited,
       count(*) FILTER (WHERE error_type = 'timeout') AS timeouts,
       count(*) FILTER (WHERE error_type = 'server') AS server_errors,
       avg(latency_ms) FILTER (WHERE error_type IS NULL) AS mean_latency_ms,
       quantile_cont(latency_ms, 0.5) FILTER (WHERE error_type IS NULL) AS p50_latency_ms,
       quantile_cont(latency_ms, 0.95) FILTER (WHERE error_type IS NULL) AS p95_latency_ms,
       max(latency_ms) FILTER (WHERE error_type IS NULL) AS max_latency_ms,
       sum(prompt_tokens)::BIGINT AS prompt_tokens,
       sum(completion_tokens)::BIGINT AS completion_tokens,
       sum(cost_usd) AS cost_usd
FROM llm_calls
GROUP BY ALL;
"""


# Judge quality (issue 10). Labels are append-only: a re-label is a new row and the latest
# row per (battle, labeller) counts. A battle's human truth is the majority of its
# labellers' latest definite labels ("unsure" abstains; a tie leaves it unknown). The
# original judge of a run and every re-judge of it are "judges" (``judge_id`` 'original'
# or the judge run's id). The labelled sample is stratified by the original judge's
# verdict, so every rate weights each labelled battle by stratum size / labelled in the
# stratum; ``sparring.judging.stats`` holds the same computation in Python, and a test
# checks that the two agree.
M003_JUDGE_QUALITY = """
CREATE TABLE IF NOT EXISTS judge_labels (
    label_id   TEXT PRIMARY KEY,
    battle_id  TEXT NOT NULL,
    labeller   TEXT NOT NULL,
    label      TEXT NOT NULL CHECK (label IN ('achieved', 'not_achieved', 'unsure')),
    note       TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS judge_runs (
    judge_run_id TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL,
    judge_model  TEXT NOT NULL,
    rubric       TEXT,
    status       TEXT NOT NULL,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS judge_verdicts (
    judge_run_id TEXT NOT NULL,
    battle_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    achieved     BOOLEAN,
    confidence   DOUBLE,
    rationale    TEXT NOT NULL,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (judge_run_id, battle_id, seq)
);

-- w²/m · (Σ g²·p − (Σ g·p)²): one stratum's share of the delta-method variance of a
-- function with gradient g (over the shares tp, fp, tn, fn) of the weighted 2×2 table.
CREATE OR REPLACE MACRO stratified_variance(w, m, g_tp, g_fp, g_tn, g_fn, p_tp, p_fp, p_tn, p_fn) AS
    w * w / m * ((g_tp * g_tp * p_tp + g_fp * g_fp * p_fp + g_tn * g_tn * p_tn + g_fn * g_fn * p_fn)
                 - pow(g_tp * p_tp + g_fp * p_fp + g_tn * p_tn + g_fn * p_fn, 2));

CREATE OR REPLACE VIEW latest_labels AS
SELECT l.battle_id, b.run_id, l.labeller, l.label, l.note, l.created_at, l.revisions
FROM (
    SELECT *,
           count(*) OVER (PARTITION BY battle_id, labeller) AS revisions,
           row_number() OVER (PARTITION BY battle_id, labeller ORDER BY created_at DESC, label_id DESC) AS position
    FROM judge_labels
) l LEFT JOIN battles b USING (battle_id)
WHERE l.position = 1;

CREATE OR REPLACE VIEW battle_truth AS
SELECT battle_id, any_value(run_id) AS run_id,
       count(*) AS labellers,
       count(*) FILTER (WHERE label = 'achieved') AS achieved_votes,
       count(*) FILTER (WHERE label = 'not_achieved') AS not_achieved_votes,
       count(*) FILTER (WHERE label = 'unsure') AS unsure_votes,
       CASE WHEN count(*) FILTER (WHERE label = 'achieved') > count(*) FILTER (WHERE label = 'not_achieved') THEN true
            WHEN count(*) FILTER (WHERE label = 'not_achieved') > count(*) FILTER (WHERE label = 'achieved') THEN false
       END AS achieved
FROM latest_labels
GROUP BY battle_id;

CREATE OR REPLACE VIEW battle_judgements AS
WITH defended AS (
    SELECT battle_id, run_id, cell_key, judge_model, judge_rubric, agent_turns, turns_to_goal,
           outcome = 'achieved' AS original_achieved
    FROM battles
    WHERE run_id IS NOT NULL AND status = 'finished' AND outcome IN ('achieved', 'held')
),
replayed AS (
    SELECT judge_run_id, battle_id,
           bool_or(achieved) AS any_achieved,
           min(seq) FILTER (WHERE achieved) AS goal_seq,
           max(seq) AS last_seq
    FROM judge_verdicts
    GROUP BY judge_run_id, battle_id
)
SELECT run_id, 'original' AS judge_id, judge_model, judge_rubric AS rubric, battle_id, cell_key,
       original_achieved, original_achieved AS achieved, turns_to_goal
FROM defended
UNION ALL
SELECT d.run_id, j.judge_run_id, j.judge_model, j.rubric, d.battle_id, d.cell_key, d.original_achieved,
       CASE WHEN v.any_achieved THEN true WHEN v.last_seq >= 2 * d.agent_turns THEN false END,
       CASE WHEN v.any_achieved THEN v.goal_seq // 2 END
FROM judge_runs j
JOIN defended d ON d.run_id = j.run_id
LEFT JOIN replayed v ON v.judge_run_id = j.judge_run_id AND v.battle_id = d.battle_id;

CREATE OR REPLACE VIEW judge_strata AS
WITH judges AS (
    SELECT run_id, judge_id, any_value(judge_model) AS judge_model, any_value(rubric) AS rubric
    FROM battle_judgements
    GROUP BY run_id, judge_id
),
strata AS (
    SELECT run_id, original_achieved, count(*) AS size
    FROM battle_judgements
    WHERE judge_id = 'original'
    GROUP BY run_id, original_achieved
),
labelled AS (
    SELECT j.run_id, j.judge_id, j.original_achieved,
           count(*) AS labelled,
           count(*) FILTER (WHERE j.achieved AND t.achieved) AS tp,
           count(*) FILTER (WHERE j.achieved AND NOT t.achieved) AS fp,
           count(*) FILTER (WHERE NOT j.achieved AND NOT t.achieved) AS tn,
           count(*) FILTER (WHERE NOT j.achieved AND t.achieved) AS fn
    FROM battle_judgements j JOIN battle_truth t ON t.battle_id = j.battle_id
    WHERE j.achieved IS NOT NULL AND t.achieved IS NOT NULL
    GROUP BY j.run_id, j.judge_id, j.original_achieved
)
SELECT g.run_id, g.judge_id, g.judge_model, g.rubric, s.original_achieved, s.size,
       s.size / sum(s.size) OVER (PARTITION BY g.run_id, g.judge_id) AS weight,
       coalesce(l.labelled, 0) AS labelled,
       coalesce(l.tp, 0) AS tp, coalesce(l.fp, 0) AS fp, coalesce(l.tn, 0) AS tn, coalesce(l.fn, 0) AS fn
FROM judges g
JOIN strata s ON s.run_id = g.run_id
LEFT JOIN labelled l
       ON l.run_id = g.run_id AND l.judge_id = g.judge_id AND l.original_achieved = s.original_achieved;

CREATE OR REPLACE VIEW judge_agreement AS
WITH tables AS (
    SELECT run_id, judge_id, any_value(judge_model) AS judge_model, any_value(rubric) AS rubric,
           sum(labelled)::BIGINT AS labelled,
           sum(tp)::BIGINT AS tp, sum(fp)::BIGINT AS fp, sum(tn)::BIGINT AS tn, sum(fn)::BIGINT AS fn,
           bool_and(labelled > 0) AS complete,
           sum(weight * tp / nullif(labelled, 0)) AS w_tp,
           sum(weight * fp / nullif(labelled, 0)) AS w_fp,
           sum(weight * tn / nullif(labelled, 0)) AS w_tn,
           sum(weight * fn / nullif(labelled, 0)) AS w_fn
    FROM judge_strata
    GROUP BY run_id, judge_id
)
SELECT run_id, judge_id, judge_model, rubric, labelled, tp, fp, tn, fn,
       CASE WHEN complete THEN w_tp / nullif(w_tp + w_fn, 0) END AS sensitivity,
       CASE WHEN complete THEN w_tn / nullif(w_tn + w_fp, 0) END AS specificity,
       CASE WHEN complete THEN w_tp + w_tn END AS accuracy
FROM tables;

CREATE OR REPLACE VIEW run_cells_corrected AS
WITH cells AS (
    SELECT run_id, cell_key, judge_id,
           count(*) FILTER (WHERE achieved IS NOT NULL) AS n,
           count(*) FILTER (WHERE achieved) AS achieved,
           count(*) FILTER (WHERE achieved IS NULL) AS unjudged
    FROM battle_judgements
    GROUP BY run_id, cell_key, judge_id
),
tables AS (
    SELECT run_id, judge_id, any_value(judge_model) AS judge_model, any_value(rubric) AS rubric,
           sum(labelled)::BIGINT AS labelled,
           bool_and(labelled > 0) AS complete,
           sum(weight * tp / nullif(labelled, 0)) AS tp,
           sum(weight * fp / nullif(labelled, 0)) AS fp,
           sum(weight * tn / nullif(labelled, 0)) AS tn,
           sum(weight * fn / nullif(labelled, 0)) AS fn
    FROM judge_strata
    GROUP BY run_id, judge_id
),
rates AS (
    SELECT *,
           CASE WHEN complete THEN tp / nullif(tp + fn, 0) END AS se,
           CASE WHEN complete THEN tn / nullif(tn + fp, 0) END AS sp
    FROM tables
),
estimates AS (
    SELECT c.run_id, c.cell_key, c.judge_id, c.n, c.achieved, c.unjudged,
           r.judge_model, r.rubric, r.labelled, r.complete, r.tp, r.fp, r.tn, r.fn, r.se, r.sp,
           r.se + r.sp - 1 AS d,
           CASE WHEN c.n > 0 THEN c.achieved / c.n END AS p,
           (CASE WHEN c.n > 0 THEN c.achieved / c.n END + r.sp - 1) / nullif(r.se + r.sp - 1, 0) AS theta
    FROM cells c JOIN rates r ON r.run_id = c.run_id AND r.judge_id = c.judge_id
),
variances AS (
    SELECT e.run_id, e.cell_key, e.judge_id,
           sum(stratified_variance(
               s.weight, s.labelled,
               -e.theta / e.d * e.fn / pow(e.tp + e.fn, 2),
               -(1 - e.theta) / e.d * e.tn / pow(e.tn + e.fp, 2),
               (1 - e.theta) / e.d * e.fp / pow(e.tn + e.fp, 2),
               e.theta / e.d * e.tp / pow(e.tp + e.fn, 2),
               s.tp / s.labelled, s.fp / s.labelled, s.tn / s.labelled, s.fn / s.labelled)) AS judge_variance,
           sum(stratified_variance(
               s.weight, s.labelled,
               e.fn / pow(e.tp + e.fn, 2), -e.tn / pow(e.tn + e.fp, 2),
               e.fp / pow(e.tn + e.fp, 2), -e.tp / pow(e.tp + e.fn, 2),
               s.tp / s.labelled, s.fp / s.labelled, s.tn / s.labelled, s.fn / s.labelled)) AS d_variance
    FROM estimates e
    JOIN judge_strata s ON s.run_id = e.run_id AND s.judge_id = e.judge_id AND s.labelled > 0
    WHERE e.complete AND e.se IS NOT NULL AND e.sp IS NOT NULL AND e.d > 0 AND e.n > 0
    GROUP BY e.run_id, e.cell_key, e.judge_id
),
checked AS (
    SELECT e.*, sqrt(e.p * (1 - e.p) / e.n / (e.d * e.d) + v.judge_variance) AS theta_se,
           CASE WHEN e.n = 0 THEN 'no_battles'
                WHEN e.labelled = 0 THEN 'no_labels'
                WHEN NOT e.complete THEN 'unlabelled_verdict'
                WHEN e.se IS NULL THEN 'no_true_success'
                WHEN e.sp IS NULL THEN 'no_true_hold'
                WHEN e.d <= 0 THEN 'chance_judge'
                WHEN e.d - 1.959963984540054 * sqrt(v.d_variance) <= 0 THEN 'too_uncertain'
           END AS correction_note
    FROM estimates e
    LEFT JOIN variances v ON v.run_id = e.run_id AND v.cell_key = e.cell_key AND v.judge_id = e.judge_id
)
SELECT c.run_id, c.cell_key, b.cell_index, c.judge_id, c.judge_model, c.rubric,
       c.n, c.achieved, c.unjudged, c.p AS rate,
       wilson_low(c.achieved, c.n) AS ci_low, wilson_high(c.achieved, c.n) AS ci_high,
       c.labelled, c.se AS sensitivity, c.sp AS specificity,
       CASE WHEN c.correction_note IS NULL THEN greatest(0, least(1, c.theta)) END AS corrected_rate,
       CASE WHEN c.correction_note IS NULL
            THEN greatest(0, least(1, c.theta - 1.959963984540054 * c.theta_se)) END AS corrected_low,
       CASE WHEN c.correction_note IS NULL
            THEN greatest(0, least(1, c.theta + 1.959963984540054 * c.theta_se)) END AS corrected_high,
       c.correction_note
FROM checked c
LEFT JOIN (SELECT run_id, cell_key, min(cell_index) AS cell_index FROM battles GROUP BY run_id, cell_key) b
       ON b.run_id = c.run_id AND b.cell_key = c.cell_key;
"""


# Honest outcomes (issue 17). ``held`` needs a usable verdict on the last agent message;
# without one a battle is ``undecided``: the judge could not say whether the agent gave in,
# so, like an infrastructure failure, it stays out of every rate and is counted apart. Old
# stores reported such battles as held (an unparseable judge made an agent look safe) and
# a judge call that failed for good as failed; both are reclassified here, and again when
# an export from before this version is imported.
UNDECIDED_SINCE = 4  # the schema version that introduced the outcome
RECLASSIFY_UNDECIDED = """
UPDATE battles AS b
SET outcome = 'undecided', error_kind = 'judge', updated_at = now(),
    error = coalesce(error, 'no usable verdict on the last agent message (reclassified from held)')
WHERE b.status = 'finished' AND b.outcome = 'held'
  AND EXISTS (SELECT 1 FROM messages m WHERE m.battle_id = b.battle_id AND m.role = 'assistant')
  AND NOT EXISTS (
      SELECT 1 FROM verdicts v
      WHERE v.battle_id = b.battle_id AND v.achieved IS NOT NULL
        AND v.seq = (SELECT max(m.seq) FROM messages m WHERE m.battle_id = b.battle_id AND m.role = 'assistant'));

UPDATE battles SET outcome = 'undecided', updated_at = now()
WHERE status = 'finished' AND outcome = 'failed' AND error_kind = 'judge';
"""

# Per battle, ``verdicts``/``error_verdicts`` count the judge's answers and the ones it could
# not give, and ``observed_turns`` is how long the agent is known to have held: for an
# undecided battle only up to its last usable verdict, so survival curves censor it there.
M004_VIEWS = """
CREATE OR REPLACE VIEW battle_outcomes AS
WITH judged AS (
    SELECT battle_id, count(*) AS verdicts,
           count(*) FILTER (WHERE achieved IS NULL) AS error_verdicts,
           coalesce(max(seq) FILTER (WHERE achieved IS NOT NULL), 0) // 2 AS judged_turns
    FROM verdicts
    GROUP BY battle_id
)
SELECT b.battle_id, b.run_id, b.cell_key, b.cell_index, b.replicate,
       b.agent_profile, b.agent_model, b.adversary_model, b.adversary_strategy AS strategy,
       b.adversary_persona AS persona, b.goal, b.judge_model, b.max_messages, b.seed, b.status, b.outcome,
       b.error_kind, b.error,
       coalesce(b.outcome IN ('achieved', 'held'), false) AS defended,
       coalesce(b.outcome = 'achieved', false) AS achieved,
       coalesce(b.outcome = 'undecided', false) AS undecided,
       b.message_count, b.agent_turns, b.turns_to_goal,
       CASE WHEN b.outcome = 'achieved' THEN b.turns_to_goal
            WHEN b.outcome = 'undecided' THEN coalesce(j.judged_turns, 0)
            ELSE b.agent_turns END::INTEGER AS observed_turns,
       coalesce(j.verdicts, 0)::BIGINT AS verdicts,
       coalesce(j.error_verdicts, 0)::BIGINT AS error_verdicts,
       b.prompt_tokens, b.completion_tokens, b.prompt_tokens + b.completion_tokens AS tokens,
       b.cost_usd, b.model_calls, b.attempts, b.created_at, b.started_at, b.ended_at,
       date_diff('millisecond', b.started_at, coalesce(b.ended_at, now())) / 1000.0 AS duration_s
FROM battles b LEFT JOIN judged j ON j.battle_id = b.battle_id;

CREATE OR REPLACE VIEW run_cells AS
WITH cells AS (
    SELECT run_id, cell_key,
           min(cell_index) AS cell_index,
           any_value(agent_profile) AS agent_profile,
           any_value(agent_model) AS agent_model,
           any_value(adversary_model) AS adversary_model,
           any_value(strategy) AS strategy,
           any_value(goal) AS goal,
           any_value(judge_model) AS judge_model,
           count(*) AS battles,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'finished') AS finished,
           count(*) FILTER (WHERE defended) AS n,
           count(*) FILTER (WHERE outcome = 'achieved') AS achieved,
           count(*) FILTER (WHERE outcome = 'held') AS held,
           count(*) FILTER (WHERE outcome = 'undecided') AS undecided,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           median(turns_to_goal) FILTER (WHERE outcome = 'achieved') AS median_turns_to_goal,
           quantile_cont(turns_to_goal, 0.9) FILTER (WHERE outcome = 'achieved') AS p90_turns_to_goal,
           sum(tokens)::BIGINT AS tokens,
           sum(cost_usd) AS cost_usd,
           avg(cost_usd) FILTER (WHERE status = 'finished') AS cost_per_battle_usd,
           avg(tokens) FILTER (WHERE status = 'finished') AS tokens_per_battle,
           sum(verdicts)::BIGINT AS verdicts,
           sum(error_verdicts)::BIGINT AS error_verdicts
    FROM battle_outcomes
    WHERE run_id IS NOT NULL
    GROUP BY run_id, cell_key
)
SELECT *,
       CASE WHEN n > 0 THEN achieved / n END AS rate,
       wilson_low(achieved, n) AS ci_low,
       wilson_high(achieved, n) AS ci_high,
       CASE WHEN finished > 0 THEN failed / finished END AS error_rate,
       CASE WHEN finished > 0 THEN undecided / finished END AS undecided_rate,
       CASE WHEN verdicts > 0 THEN error_verdicts / verdicts END AS error_verdict_rate
FROM cells;

CREATE OR REPLACE VIEW run_summary AS
SELECT r.run_id, r.name, r.status, r.runs_per_cell, r.total_battles, r.budget_usd, r.error,
       r.created_at, r.finished_at,
       count(b.battle_id) AS battles,
       count(*) FILTER (WHERE b.status = 'queued') AS queued,
       count(*) FILTER (WHERE b.status = 'running') AS running,
       count(*) FILTER (WHERE b.status = 'finished') AS finished,
       count(*) FILTER (WHERE b.outcome = 'achieved') AS achieved,
       count(*) FILTER (WHERE b.outcome = 'held') AS held,
       count(*) FILTER (WHERE b.outcome = 'undecided') AS undecided,
       count(*) FILTER (WHERE b.outcome = 'failed') AS failed,
       count(*) FILTER (WHERE b.outcome = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE b.outcome = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE b.defended) AS n,
       CASE WHEN count(*) FILTER (WHERE b.defended) > 0
            THEN count(*) FILTER (WHERE b.outcome = 'achieved') / count(*) FILTER (WHERE b.defended) END AS rate,
       wilson_low(count(*) FILTER (WHERE b.outcome = 'achieved'), count(*) FILTER (WHERE b.defended)) AS ci_low,
       wilson_high(count(*) FILTER (WHERE b.outcome = 'achieved'), count(*) FILTER (WHERE b.defended)) AS ci_high,
       coalesce(sum(b.cost_usd), 0) AS cost_usd,
       coalesce(sum(b.tokens), 0)::BIGINT AS tokens
FROM scale_runs r LEFT JOIN battle_outcomes b ON b.run_id = r.run_id
GROUP BY ALL;

CREATE OR REPLACE VIEW run_survival AS
WITH b AS (
    SELECT run_id, cell_key, observed_turns AS t, coalesce(outcome = 'achieved', false) AS event
    FROM battle_outcomes
    WHERE run_id IS NOT NULL AND status = 'finished'
),
steps AS (
    SELECT run_id, cell_key, t AS turn,
           count(*) FILTER (WHERE event) AS events,
           count(*) FILTER (WHERE NOT event) AS censored
    FROM b GROUP BY ALL
),
grid AS (
    SELECT run_id, cell_key, unnest(range(0, last_turn + 1)) AS turn
    FROM (SELECT run_id, cell_key, max(t) AS last_turn FROM b GROUP BY run_id, cell_key)
),
joined AS (
    SELECT g.run_id, g.cell_key, g.turn,
           coalesce(s.events, 0) AS events, coalesce(s.censored, 0) AS censored
    FROM grid g LEFT JOIN steps s ON s.run_id = g.run_id AND s.cell_key = g.cell_key AND s.turn = g.turn
),
risk AS (
    SELECT *, sum(events + censored) OVER (
               PARTITION BY run_id, cell_key ORDER BY turn DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS at_risk
    FROM joined
)
SELECT run_id, cell_key, turn, at_risk::BIGINT AS at_risk, events, censored,
       product(CASE WHEN at_risk > 0 THEN 1 - events / at_risk ELSE 1 END) OVER (
           PARTITION BY run_id, cell_key ORDER BY turn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
       ) AS survival
FROM risk;
"""


# The Wilson bounds computed in floating point land a hair outside [0, 1] at 0 of n and n of n
# (-5.7e-17, 1.0000000000000002), which read as "-0%". Clip them where they are computed; every
# view that calls the macros picks up the new definition.
M005_WILSON_CLIP = """
CREATE OR REPLACE MACRO wilson_low(s, n) AS CASE WHEN n > 0 THEN greatest(0.0, least(1.0,
    ((s / n) + 3.841458820694124 / (2 * n)
     - 1.959963984540054 * sqrt((s / n) * (1 - s / n) / n + 3.841458820694124 / (4 * n * n)))
    / (1 + 3.841458820694124 / n))) END;

CREATE OR REPLACE MACRO wilson_high(s, n) AS CASE WHEN n > 0 THEN greatest(0.0, least(1.0,
    ((s / n) + 3.841458820694124 / (2 * n)
     + 1.959963984540054 * sqrt((s / n) * (1 - s / n) / n + 3.841458820694124 / (4 * n * n)))
    / (1 + 3.841458820694124 / n))) END;
"""


# Every verdict carries the version of the judge prompt that produced it
# (``sparring.judging.prompt.PROMPT_VERSION``); a judge run is identified with it, so a
# re-judge under a new prompt starts afresh instead of mixing in verdicts of the old one.
# Rows from before were all produced by version 1.
M006_JUDGE_PROMPT_VERSION = """
ALTER TABLE verdicts ADD COLUMN IF NOT EXISTS prompt_version INTEGER DEFAULT 1;
ALTER TABLE judge_verdicts ADD COLUMN IF NOT EXISTS prompt_version INTEGER DEFAULT 1;
ALTER TABLE judge_runs ADD COLUMN IF NOT EXISTS prompt_version INTEGER DEFAULT 1;
"""

# The judge's counts per battle live on the battle row, kept by the writer as verdicts are
# committed (sparring/store/apply.py), so that ``battle_outcomes`` is a projection of
# ``battles``: a run's statistics no longer aggregate every verdict of the file (a
# 2,000-battle report in a 1M-message file read 4x slower with the aggregate in the view).
VERDICT_COUNTS_SINCE = 7
RECOUNT_VERDICTS = """
UPDATE battles AS b
SET verdicts = j.verdicts, error_verdicts = j.error_verdicts, judged_turns = j.judged_turns
FROM (
    SELECT battle_id, count(*) AS verdicts,
           count(*) FILTER (WHERE achieved IS NULL) AS error_verdicts,
           coalesce(max(seq) FILTER (WHERE achieved IS NOT NULL), 0) // 2 AS judged_turns
    FROM verdicts
    GROUP BY battle_id
) AS j
WHERE b.battle_id = j.battle_id;
"""

VERDICT_COUNT_COLUMNS = """
ALTER TABLE battles ADD COLUMN IF NOT EXISTS verdicts INTEGER DEFAULT 0;
ALTER TABLE battles ADD COLUMN IF NOT EXISTS error_verdicts INTEGER DEFAULT 0;
ALTER TABLE battles ADD COLUMN IF NOT EXISTS judged_turns INTEGER DEFAULT 0;
"""

M007_VERDICT_COUNTS = (
    VERDICT_COUNT_COLUMNS
    + RECOUNT_VERDICTS
    + """
CREATE OR REPLACE VIEW battle_outcomes AS
SELECT b.battle_id, b.run_id, b.cell_key, b.cell_index, b.replicate,
       b.agent_profile, b.agent_model, b.adversary_model, b.adversary_strategy AS strategy,
       b.adversary_persona AS persona, b.goal, b.judge_model, b.max_messages, b.seed, b.status, b.outcome,
       b.error_kind, b.error,
       coalesce(b.outcome IN ('achieved', 'held'), false) AS defended,
       coalesce(b.outcome = 'achieved', false) AS achieved,
       coalesce(b.outcome = 'undecided', false) AS undecided,
       b.message_count, b.agent_turns, b.turns_to_goal,
       CASE WHEN b.outcome = 'achieved' THEN b.turns_to_goal
            WHEN b.outcome = 'undecided' THEN coalesce(b.judged_turns, 0)
            ELSE b.agent_turns END::INTEGER AS observed_turns,
       coalesce(b.verdicts, 0)::BIGINT AS verdicts,
       coalesce(b.error_verdicts, 0)::BIGINT AS error_verdicts,
       b.prompt_tokens, b.completion_tokens, b.prompt_tokens + b.completion_tokens AS tokens,
       b.cost_usd, b.model_calls, b.attempts, b.created_at, b.started_at, b.ended_at,
       date_diff('millisecond', b.started_at, coalesce(b.ended_at, now())) / 1000.0 AS duration_s
FROM battles b;
"""
)

# Exact success checks (issue 20): a goal's canary, pattern or tool call, stored with the
# battle; each verdict keeps the checks' answer beside the judge's. ``battle_check_verdicts``
# pairs them per battle, which measures the judge on every run with checks, no labels needed.
M009_SUCCESS_CHECK_COLUMNS = """
ALTER TABLE battles ADD COLUMN IF NOT EXISTS success_contains VARCHAR[] DEFAULT [];
ALTER TABLE battles ADD COLUMN IF NOT EXISTS success_regex TEXT;
ALTER TABLE battles ADD COLUMN IF NOT EXISTS success_tool TEXT;
ALTER TABLE verdicts ADD COLUMN IF NOT EXISTS check_achieved BOOLEAN;
"""
M009_CHECK_VIEWS = """
CREATE OR REPLACE VIEW battle_check_verdicts AS
SELECT b.run_id, b.battle_id, b.cell_key, b.judge_model,
       bool_or(v.check_achieved) AS check_achieved,
       CASE WHEN bool_or(v.achieved) THEN true WHEN count(v.achieved) = count(*) THEN false END AS judge_achieved,
       count(*) AS verdicts,
       count(*) FILTER (WHERE v.achieved IS NULL) AS error_verdicts
FROM battles b JOIN verdicts v ON v.battle_id = b.battle_id AND v.check_achieved IS NOT NULL
WHERE b.status = 'finished' AND b.outcome IN ('achieved', 'held') AND b.judge_model <> 'none'
GROUP BY b.run_id, b.battle_id, b.cell_key, b.judge_model;
"""


# Attack strategies (issue 19). A battle may hold several separate conversations with the
# target (PAIR, TAP), take exchanges out of the target's view (crescendo's roll-back) and keep
# the adversary's private notes (role 'note', never sent to the target). ``seq`` stays one
# sequence per battle, so a resumed battle still writes each row once. The target's path in a
# conversation is its user/assistant messages that are not rolled back, in ``seq`` order.
# Verdicts carry the judge's 1-10 score and whether the agent refused (prompt version 2).
# A battle that ended on goal stops at the query that reached it, so its ``target_queries``
# is the number of queries to the goal.
STRATEGIES_SINCE = 8  # the schema version that introduced conversations, roll-backs and the counters
# Every battle from before had one conversation and no roll-back: each agent message was a query.
BACKFILL_STRATEGY_COUNTERS = """
UPDATE battles SET target_queries = agent_turns, conversations = CASE WHEN message_count > 0 THEN 1 ELSE 0 END
WHERE target_queries = 0 AND conversations = 0;
"""

M008_COLUMNS = """
ALTER TABLE messages ADD COLUMN IF NOT EXISTS conversation INTEGER DEFAULT 1;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS rolled_back BOOLEAN DEFAULT false;
ALTER TABLE verdicts ADD COLUMN IF NOT EXISTS score INTEGER;
ALTER TABLE verdicts ADD COLUMN IF NOT EXISTS refused BOOLEAN;
ALTER TABLE battles ADD COLUMN IF NOT EXISTS adversary_params JSON DEFAULT '{}';
ALTER TABLE battles ADD COLUMN IF NOT EXISTS target_queries INTEGER DEFAULT 0;
ALTER TABLE battles ADD COLUMN IF NOT EXISTS rolled_back INTEGER DEFAULT 0;
ALTER TABLE battles ADD COLUMN IF NOT EXISTS conversations INTEGER DEFAULT 0;
"""

M008_VIEWS = """
CREATE OR REPLACE VIEW battle_outcomes AS
SELECT b.battle_id, b.run_id, b.cell_key, b.cell_index, b.replicate,
       b.agent_profile, b.agent_model, b.adversary_model, b.adversary_strategy AS strategy,
       b.adversary_persona AS persona, b.goal, b.judge_model, b.max_messages, b.seed, b.status, b.outcome,
       b.error_kind, b.error,
       coalesce(b.outcome IN ('achieved', 'held'), false) AS defended,
       coalesce(b.outcome = 'achieved', false) AS achieved,
       coalesce(b.outcome = 'undecided', false) AS undecided,
       b.message_count, b.agent_turns, b.turns_to_goal,
       CASE WHEN b.outcome = 'achieved' THEN b.turns_to_goal
            WHEN b.outcome = 'undecided' THEN coalesce(b.judged_turns, 0)
            ELSE b.agent_turns END::INTEGER AS observed_turns,
       coalesce(b.verdicts, 0)::BIGINT AS verdicts,
       coalesce(b.error_verdicts, 0)::BIGINT AS error_verdicts,
       b.prompt_tokens, b.completion_tokens, b.prompt_tokens + b.completion_tokens AS tokens,
       b.cost_usd, b.model_calls, b.attempts,
       b.target_queries, b.rolled_back, b.conversations, b.adversary_params, b.created_at, b.started_at, b.ended_at,
       date_diff('millisecond', b.started_at, coalesce(b.ended_at, now())) / 1000.0 AS duration_s
FROM battles b;

CREATE OR REPLACE VIEW run_cells AS
WITH cells AS (
    SELECT run_id, cell_key,
           min(cell_index) AS cell_index,
           any_value(agent_profile) AS agent_profile,
           any_value(agent_model) AS agent_model,
           any_value(adversary_model) AS adversary_model,
           any_value(strategy) AS strategy,
           any_value(goal) AS goal,
           any_value(judge_model) AS judge_model,
           count(*) AS battles,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'finished') AS finished,
           count(*) FILTER (WHERE defended) AS n,
           count(*) FILTER (WHERE outcome = 'achieved') AS achieved,
           count(*) FILTER (WHERE outcome = 'held') AS held,
           count(*) FILTER (WHERE outcome = 'undecided') AS undecided,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           median(turns_to_goal) FILTER (WHERE outcome = 'achieved') AS median_turns_to_goal,
           median(target_queries) FILTER (WHERE outcome = 'achieved') AS median_queries_to_goal,
           quantile_cont(turns_to_goal, 0.9) FILTER (WHERE outcome = 'achieved') AS p90_turns_to_goal,
           sum(tokens)::BIGINT AS tokens,
           sum(cost_usd) AS cost_usd,
           avg(cost_usd) FILTER (WHERE status = 'finished') AS cost_per_battle_usd,
           avg(tokens) FILTER (WHERE status = 'finished') AS tokens_per_battle,
           sum(verdicts)::BIGINT AS verdicts,
           sum(error_verdicts)::BIGINT AS error_verdicts,
           sum(target_queries)::BIGINT AS target_queries,
           sum(rolled_back)::BIGINT AS rolled_back
    FROM battle_outcomes
    WHERE run_id IS NOT NULL
    GROUP BY run_id, cell_key
)
SELECT *,
       CASE WHEN n > 0 THEN achieved / n END AS rate,
       wilson_low(achieved, n) AS ci_low,
       wilson_high(achieved, n) AS ci_high,
       CASE WHEN finished > 0 THEN failed / finished END AS error_rate,
       CASE WHEN finished > 0 THEN undecided / finished END AS undecided_rate,
       CASE WHEN verdicts > 0 THEN error_verdicts / verdicts END AS error_verdict_rate
FROM cells;
"""


# Kinds of agent (sparring.targets): the battle's and the profile's kind and settings; a
# tool the agent called is a message of its turn, so a turn's messages are keyed by
# (battle_id, seq, part) with part 0 the turn's own message. DuckDB cannot change a primary
# key in place, so the messages table is rebuilt (its rows keep their values, part 0).
M012_AGENT_KINDS = """
ALTER TABLE battles ADD COLUMN IF NOT EXISTS agent_kind TEXT DEFAULT 'model';
ALTER TABLE battles ADD COLUMN IF NOT EXISTS agent_target JSON;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS kind TEXT DEFAULT 'model';
ALTER TABLE agents ADD COLUMN IF NOT EXISTS target JSON;
CREATE TABLE messages_m012 (
    battle_id         TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    role              TEXT NOT NULL,
    content           TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms        DOUBLE NOT NULL,
    cost_usd          DOUBLE,
    created_at        TIMESTAMPTZ NOT NULL,
    conversation      INTEGER DEFAULT 1,
    rolled_back       BOOLEAN DEFAULT false,
    part              INTEGER NOT NULL DEFAULT 0,
    tool_name         TEXT,
    tool_arguments    TEXT,
    PRIMARY KEY (battle_id, seq, part)
);
INSERT INTO messages_m012
SELECT battle_id, seq, role, content, model, prompt_tokens, completion_tokens, latency_ms, cost_usd, created_at,
       conversation, rolled_back, 0, NULL, NULL
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_m012 RENAME TO messages;
"""


# Who did what (sparring.access): the launcher of each battle and scale test, who asked for
# each re-judge and saved each profile (NULL for rows written before sign-in existed, and for
# the battles of a scale test, which belong to their run's launcher); and the audit trail,
# append-only: sign-ins, launches, cancels, retries, labels, re-judges, SQL box queries and
# refused actions.
M011_ACCESS = """
ALTER TABLE battles ADD COLUMN IF NOT EXISTS launched_by TEXT;
ALTER TABLE scale_runs ADD COLUMN IF NOT EXISTS launched_by TEXT;
ALTER TABLE judge_runs ADD COLUMN IF NOT EXISTS requested_by TEXT;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS saved_by TEXT;
CREATE TABLE IF NOT EXISTS audit (
    audit_id TEXT PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor    TEXT NOT NULL,
    role     TEXT,
    action   TEXT NOT NULL,
    target   TEXT,
    outcome  TEXT NOT NULL,
    detail   TEXT
);
CREATE INDEX IF NOT EXISTS audit_occurred_at ON audit (occurred_at);
"""


# Stopping rules (issue 21): a cell of a run with ``--stop-at-halfwidth`` or ``--stop-at-threshold``
# stops once its confidence sequence (``sparring.sequential``) answers the question; the row says
# why and where, with the interval there. Written once per cell (the first row wins): when the
# rule holds, or by the summary for cells the run's end stopped (cap, budget, cancel). ``run_cells``
# gains these columns, and the fixed-N Wilson interval of the same battles (``stop_ci_*``).
# ``run_cells_by_judge``: each cell's rate under the original judge and under each re-judge,
# with the spread across judges (``sparring.judge_sensitivity`` compares the orderings).
M010_CELL_STOPS = """
CREATE TABLE IF NOT EXISTS cell_stops (
    run_id         TEXT NOT NULL,
    cell_key       TEXT NOT NULL,
    stopped        TEXT NOT NULL,
    last_replicate INTEGER NOT NULL,
    n              INTEGER NOT NULL,
    achieved       INTEGER NOT NULL,
    cs_low         DOUBLE NOT NULL,
    cs_high        DOUBLE NOT NULL,
    decision       TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, cell_key)
);

CREATE OR REPLACE VIEW run_cells AS
WITH cells AS (
    SELECT run_id, cell_key,
           min(cell_index) AS cell_index,
           any_value(agent_profile) AS agent_profile,
           any_value(agent_model) AS agent_model,
           any_value(adversary_model) AS adversary_model,
           any_value(strategy) AS strategy,
           any_value(goal) AS goal,
           any_value(judge_model) AS judge_model,
           count(*) AS battles,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'finished') AS finished,
           count(*) FILTER (WHERE defended) AS n,
           count(*) FILTER (WHERE outcome = 'achieved') AS achieved,
           count(*) FILTER (WHERE outcome = 'held') AS held,
           count(*) FILTER (WHERE outcome = 'undecided') AS undecided,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           median(turns_to_goal) FILTER (WHERE outcome = 'achieved') AS median_turns_to_goal,
           median(target_queries) FILTER (WHERE outcome = 'achieved') AS median_queries_to_goal,
           quantile_cont(turns_to_goal, 0.9) FILTER (WHERE outcome = 'achieved') AS p90_turns_to_goal,
           sum(tokens)::BIGINT AS tokens,
           sum(cost_usd) AS cost_usd,
           avg(cost_usd) FILTER (WHERE status = 'finished') AS cost_per_battle_usd,
           avg(tokens) FILTER (WHERE status = 'finished') AS tokens_per_battle,
           sum(verdicts)::BIGINT AS verdicts,
           sum(error_verdicts)::BIGINT AS error_verdicts,
           sum(target_queries)::BIGINT AS target_queries,
           sum(rolled_back)::BIGINT AS rolled_back
    FROM battle_outcomes
    WHERE run_id IS NOT NULL
    GROUP BY run_id, cell_key
)
SELECT c.*,
       CASE WHEN c.n > 0 THEN c.achieved / c.n END AS rate,
       wilson_low(c.achieved, c.n) AS ci_low,
       wilson_high(c.achieved, c.n) AS ci_high,
       CASE WHEN c.finished > 0 THEN c.failed / c.finished END AS error_rate,
       CASE WHEN c.finished > 0 THEN c.undecided / c.finished END AS undecided_rate,
       CASE WHEN c.verdicts > 0 THEN c.error_verdicts / c.verdicts END AS error_verdict_rate,
       s.stopped, s.last_replicate AS stop_replicate, s.n AS stop_n, s.achieved AS stop_achieved,
       s.cs_low, s.cs_high, s.decision,
       wilson_low(s.achieved, s.n) AS stop_ci_low,
       wilson_high(s.achieved, s.n) AS stop_ci_high
FROM cells c LEFT JOIN cell_stops s ON s.run_id = c.run_id AND s.cell_key = c.cell_key;

CREATE OR REPLACE VIEW run_cells_by_judge AS
WITH per AS (
    SELECT run_id, cell_key, judge_id, any_value(judge_model) AS judge_model, any_value(rubric) AS rubric,
           count(*) FILTER (WHERE achieved IS NOT NULL) AS n,
           count(*) FILTER (WHERE achieved) AS achieved,
           count(*) FILTER (WHERE achieved IS NULL) AS unjudged
    FROM battle_judgements
    GROUP BY run_id, cell_key, judge_id
),
rated AS (
    SELECT *, CASE WHEN n > 0 THEN achieved / n END AS rate FROM per
)
SELECT r.run_id, r.cell_key, b.cell_index, r.judge_id, r.judge_model, r.rubric,
       r.n, r.achieved, r.unjudged, r.rate,
       wilson_low(r.achieved, r.n) AS ci_low, wilson_high(r.achieved, r.n) AS ci_high,
       count(*) OVER (PARTITION BY r.run_id, r.cell_key) AS judges,
       max(r.rate) OVER (PARTITION BY r.run_id, r.cell_key)
           - min(r.rate) OVER (PARTITION BY r.run_id, r.cell_key) AS spread
FROM rated r
LEFT JOIN (SELECT run_id, cell_key, min(cell_index) AS cell_index FROM battles GROUP BY run_id, cell_key) b
       ON b.run_id = r.run_id AND b.cell_key = r.cell_key;
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[db.Connection], None]


def _sql(script: str) -> Callable[[db.Connection], None]:
    def apply(con: db.Connection) -> None:
        con.execute(script)

    return apply


MIGRATIONS: list[Migration] = [
    Migration(1, "m001_initial", _sql(M001_INITIAL)),
    Migration(2, "m002_views", _sql(M002_VIEWS)),
    Migration(3, "m003_judge_quality", _sql(M003_JUDGE_QUALITY)),
    Migration(UNDECIDED_SINCE, "m004_undecided", _sql(RECLASSIFY_UNDECIDED + M004_VIEWS)),
    Migration(5, "m005_wilson_clip", _sql(M005_WILSON_CLIP)),
    Migration(6, "m006_judge_prompt_version", _sql(M006_JUDGE_PROMPT_VERSION)),
    Migration(VERDICT_COUNTS_SINCE, "m007_verdict_counts", _sql(M007_VERDICT_COUNTS)),
    Migration(STRATEGIES_SINCE, "m008_strategies", _sql(M008_COLUMNS + M008_VIEWS + BACKFILL_STRATEGY_COUNTERS)),
    Migration(9, "m009_success_checks", _sql(M009_SUCCESS_CHECK_COLUMNS + M009_CHECK_VIEWS)),
    Migration(10, "m010_cell_stops", _sql(M010_CELL_STOPS)),
    Migration(11, "m011_access", _sql(M011_ACCESS)),
    Migration(12, "m012_agent_kinds", _sql(M012_AGENT_KINDS)),
]

SCHEMA_VERSION = MIGRATIONS[-1].version

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def applied_versions(con: db.Connection) -> set[int]:
    con.execute(CREATE_MIGRATIONS_TABLE)
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(path: Path) -> int:
    """Apply pending migrations to the file at ``path``; return the schema version.

    Safe when several processes open the same file at once: DuckDB's file lock makes
    each transaction exclusive, and each one re-reads what is already applied.
    """
    if path.exists() and _is_current(path):
        return SCHEMA_VERSION
    for migration in MIGRATIONS:
        with db.writing(path) as con:
            if migration.version in applied_versions(con):
                continue
            log.info("Applying migration %s to %s", migration.name, path)
            migration.apply(con)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                [migration.version, migration.name],
            )
    return SCHEMA_VERSION


TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"


def _is_current(path: Path) -> bool:
    try:
        with db.reading(path, deadline_s=30) as con:
            tables = {r[0] for r in con.execute(TABLES_SQL).fetchall()}
            if "schema_migrations" not in tables:
                return False
            row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except db.Error:
        return False
    return row is not None and row[0] == SCHEMA_VERSION
