"""Judging, in one package: every success rate rests on the judge.

- ``prompt``: the judge's prompt (and its ``PROMPT_VERSION``, recorded with every verdict),
  the parsing of its verdict, and ``decide``, the one dialog (ask, ask once more on an
  unparseable answer, else an error verdict) used by the engine, the re-judger and the check.
- ``labels``: runs to label, the verdict-stratified sample, people's labels.
- ``stats``: agreement and corrected rates from a verdict-stratified sample (Python; the
  views of migration 3 compute the same and are tested against it).
- ``report``: each judge of a run against the labels, and the corrected cell rates.
- ``rejudging``: another judge model or rubric replayed over a finished run.
- ``check``: a judge tried on two known transcripts before a launch.

Its SQL lives in ``sparring.store.judging``. No Streamlit, no Huey: the pages, the CLI and
``jobs.judging`` call it. The names below are importable from the package itself; they load
on first use, so that importing the prompt (the engine does) does not load the statistics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparring.judging.check import (
        JudgeCheck as JudgeCheck,
    )
    from sparring.judging.check import (
        check_judge as check_judge,
    )
    from sparring.judging.check import (
        recall_check as recall_check,
    )
    from sparring.judging.labels import (
        DEFAULT_PER_VERDICT as DEFAULT_PER_VERDICT,
    )
    from sparring.judging.labels import (
        FINISHED_RUN_STATUSES as FINISHED_RUN_STATUSES,
    )
    from sparring.judging.labels import (
        MAX_PER_VERDICT as MAX_PER_VERDICT,
    )
    from sparring.judging.labels import (
        LabelInput as LabelInput,
    )
    from sparring.judging.labels import (
        LabelRow as LabelRow,
    )
    from sparring.judging.labels import (
        RunInfo as RunInfo,
    )
    from sparring.judging.labels import (
        RunNotFinishedError as RunNotFinishedError,
    )
    from sparring.judging.labels import (
        SampledBattle as SampledBattle,
    )
    from sparring.judging.labels import (
        SampleInput as SampleInput,
    )
    from sparring.judging.labels import (
        UnknownRunError as UnknownRunError,
    )
    from sparring.judging.labels import (
        finished_run as finished_run,
    )
    from sparring.judging.labels import (
        get_run as get_run,
    )
    from sparring.judging.labels import (
        label_history as label_history,
    )
    from sparring.judging.labels import (
        latest_labels as latest_labels,
    )
    from sparring.judging.labels import (
        list_runs as list_runs,
    )
    from sparring.judging.labels import (
        sample_battles as sample_battles,
    )
    from sparring.judging.labels import (
        save_label as save_label,
    )
    from sparring.judging.prompt import (
        PROMPT_VERSION as PROMPT_VERSION,
    )
    from sparring.judging.prompt import (
        Decision as Decision,
    )
    from sparring.judging.prompt import (
        decide as decide,
    )
    from sparring.judging.rejudging import (
        CANCELLED_NOTE as CANCELLED_NOTE,
    )
    from sparring.judging.rejudging import (
        JUDGE_RUN_ENDED as JUDGE_RUN_ENDED,
    )
    from sparring.judging.rejudging import (
        REJUDGE_THREADS as REJUDGE_THREADS,
    )
    from sparring.judging.rejudging import (
        RejudgeInput as RejudgeInput,
    )
    from sparring.judging.rejudging import (
        RejudgeResult as RejudgeResult,
    )
    from sparring.judging.rejudging import (
        StalePromptError as StalePromptError,
    )
    from sparring.judging.rejudging import (
        judge_run_id_for as judge_run_id_for,
    )
    from sparring.judging.rejudging import (
        judge_run_status as judge_run_status,
    )
    from sparring.judging.rejudging import (
        plan_rejudge as plan_rejudge,
    )
    from sparring.judging.rejudging import (
        rejudge as rejudge,
    )
    from sparring.judging.report import (
        CHECKS_NAME as CHECKS_NAME,
    )
    from sparring.judging.report import (
        ORIGINAL as ORIGINAL,
    )
    from sparring.judging.report import (
        BattleVerdict as BattleVerdict,
    )
    from sparring.judging.report import (
        CheckAgreement as CheckAgreement,
    )
    from sparring.judging.report import (
        CorrectedCell as CorrectedCell,
    )
    from sparring.judging.report import (
        Disagreement as Disagreement,
    )
    from sparring.judging.report import (
        JudgeInfo as JudgeInfo,
    )
    from sparring.judging.report import (
        JudgeQuality as JudgeQuality,
    )
    from sparring.judging.report import (
        JudgeReport as JudgeReport,
    )
    from sparring.judging.report import (
        PairAgreement as PairAgreement,
    )
    from sparring.judging.report import (
        battle_verdicts as battle_verdicts,
    )
    from sparring.judging.report import (
        judge_report as judge_report,
    )
    from sparring.judging.report import (
        list_judges as list_judges,
    )
    from sparring.judging.report import (
        report_json as report_json,
    )
    from sparring.judging.report import (
        run_check_agreement as run_check_agreement,
    )

_HOMES = {
    "check": ("JudgeCheck", "check_judge", "recall_check"),
    "labels": (
        "DEFAULT_PER_VERDICT",
        "FINISHED_RUN_STATUSES",
        "MAX_PER_VERDICT",
        "LabelInput",
        "LabelRow",
        "RunInfo",
        "RunNotFinishedError",
        "SampleInput",
        "SampledBattle",
        "UnknownRunError",
        "finished_run",
        "get_run",
        "label_history",
        "latest_labels",
        "list_runs",
        "sample_battles",
        "save_label",
    ),
    "prompt": ("PROMPT_VERSION", "Decision", "decide"),
    "rejudging": (
        "CANCELLED_NOTE",
        "JUDGE_RUN_ENDED",
        "REJUDGE_THREADS",
        "RejudgeInput",
        "RejudgeResult",
        "StalePromptError",
        "judge_run_id_for",
        "judge_run_status",
        "plan_rejudge",
        "rejudge",
    ),
    "report": (
        "CHECKS_NAME",
        "CheckAgreement",
        "run_check_agreement",
        "ORIGINAL",
        "BattleVerdict",
        "CorrectedCell",
        "Disagreement",
        "JudgeInfo",
        "JudgeQuality",
        "JudgeReport",
        "PairAgreement",
        "battle_verdicts",
        "judge_report",
        "list_judges",
        "report_json",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> Any:
    if name in _HOMES:  # a submodule not imported yet
        return importlib.import_module(f"{__name__}.{name}")
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
