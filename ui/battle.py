"""Battle: one battle's header and transcript, live while it runs. ``?id=<battle id>`` links here."""

from __future__ import annotations

import streamlit as st

from sparring import checks, formatting
from sparring import records as r
from sparring.store import reads
from sparring.strategies import STRATEGIES
from sparring.strategies.base import note_of, rolled_back_by
from ui import common
from ui.state import Transcript

CACHE = "battle_transcript"


def transcript_for(battle_id: str) -> Transcript:
    cached = st.session_state.get(CACHE)
    if not isinstance(cached, Transcript) or cached.battle_id != battle_id:
        cached = st.session_state[CACHE] = Transcript(battle_id)
    return cached


def load(battle_id: str) -> r.BattleView | None:
    transcript = transcript_for(battle_id)
    update = common.read(reads.battle_update, battle_id, transcript.last_seq, transcript.last_verdict_seq)
    if update is None:  # the database is busy: show what was read last
        return transcript.view
    transcript.add(update)
    transcript.view = update.battle
    return update.battle


# -- header -------------------------------------------------------------------------------------


def header(view: r.BattleView) -> None:
    at = common.now()
    spec = view.spec
    state = view.outcome if view.finished and view.outcome else view.status
    status_line = [common.badge(state)]
    if view.status == "running":
        status_line.append(":blue[:material/radio_button_checked:] live")
    summary = formatting.outcome_summary(view, judge=common.inert(view.spec.judge.model))
    if summary:
        status_line.append(summary)
    status_line.append(f"created {common.format_ago(view.created_at, at)}")
    if view.attempts > 1:
        status_line.append(f"{view.attempts} attempts")
    if view.target_queries:
        status_line.append(f"{view.target_queries} queries to the agent")
    if view.rolled_back:
        status_line.append(f"{view.rolled_back} rolled back")
    if view.conversations > 1:
        status_line.append(f"{view.conversations} conversations")
    st.container(key="battle_status").markdown(" · ".join(status_line))
    if not view.finished:
        common.writes_waiting_notice()

    messages, turns, tokens, cost, elapsed = st.columns(5)
    if view.conversations > 1:
        messages.metric(
            "Queries",
            view.target_queries,
            help="Calls to the agent, one per single-turn conversation; the strategy's parameters bound them.",
        )
    else:
        messages.metric(
            "Messages",
            f"{formatting.path_length(transcript_for(view.battle_id).messages)} / {spec.max_messages}",
            help="Adversary and agent messages the agent saw; private notes and rolled-back exchanges "
            "do not count against the cap.",
        )
    if view.outcome == "achieved" and view.turns_to_goal is not None:
        turns.metric("Turns to goal", view.turns_to_goal)
    else:
        turns.metric("Agent turns", view.agent_turns)
    tokens.metric("Tokens", f"{view.prompt_tokens + view.completion_tokens:,}")
    cost.metric("Cost", f"${view.cost_usd:,.4f}")
    seconds = transcript_for(view.battle_id).elapsed_s
    if seconds is None:
        seconds = common.elapsed_s(view.created_at, view.started_at, view.ended_at, at)
    elapsed.metric(
        "Elapsed",
        common.format_duration(seconds),
        help="How long it has run, summed over its attempts (a retry leaves out the time it sat stopped); "
        "while queued, how long it has waited.",
    )

    agent, adversary, judge = st.columns(3)
    profile = f" (profile {common.inert(spec.agent.profile)})" if spec.agent.profile else ""
    temperature = f" · temperature {spec.agent.temperature:g}" if spec.agent.temperature is not None else ""
    agent.markdown(f"**Agent**  \n{common.inert(spec.agent.model)}{profile}{temperature}")
    strategy = STRATEGIES.get(spec.adversary.strategy)
    adversary.markdown(
        f"**Adversary**  \n{common.inert(spec.adversary.model)} · "
        f"{strategy.label if strategy else common.inert(spec.adversary.strategy)}"
    )
    judge.markdown(f"**Judge**  \n{common.inert(spec.judge.model)}")
    st.markdown(f"**Goal**  \n{common.inert(spec.adversary.goal)}")
    if spec.checks.present:
        described = checks.describe(checks.from_fields(spec.checks.contains, spec.checks.regex, spec.checks.tool))
        st.markdown(f"**Success checks** (they decide the outcome)  \n{common.inert(described)}")
    if spec.adversary.persona:
        st.markdown(f"**Persona**  \n{common.inert(spec.adversary.persona)}")
    with st.expander("Agent system prompt", icon=":material/description:"):
        st.markdown(common.inert(spec.agent.system_prompt))
        if spec.judge.rubric:
            st.markdown(f"**Judge rubric**  \n{common.inert(spec.judge.rubric)}")

    if view.error and view.outcome in ("failed", "timed_out"):
        kind = f" ({view.error_kind})" if view.error_kind else ""
        st.error(f"**Error{kind}:** {common.inert(view.error)}", icon=":material/error:")
    elif view.outcome == "undecided":
        why = f" ({common.inert(view.error)})" if view.error else ""
        st.warning(
            f"**Undecided:** nobody knows whether the agent held{why}. Undecided battles are left out of "
            "success rates; check the judge model.",
            icon=":material/help:",
        )
    elif view.error and view.outcome == "cancelled":
        st.info(common.inert(view.error), icon=":material/block:")

    with st.container(horizontal=True, gap="small"):
        common.action_buttons(view.battle_id, view.status, view.outcome, "battle")


# -- transcript ----------------------------------------------------------------------------------


def verdict(message: r.Message, found: r.Verdict | None, view: r.BattleView, folded: bool = False) -> None:
    if found is None:
        if message.rolled_back:
            return
        if view.finished:
            st.caption("No verdict: the battle ended before the judge answered.")
        else:
            st.caption(":material/hourglass_top: The judge is deciding…")
        return
    if found.check_achieved is not None:
        outcome = "goal **achieved**" if found.check_achieved else "not achieved"
        st.caption(f":material/rule: Success checks: {outcome} (they decide the outcome)")
        if found.judge_model == checks.NO_JUDGE:
            return
    confidence = f" · {found.confidence:.0%} confident" if found.confidence is not None else ""
    score = f" · score {found.score}/10" if found.score is not None else ""
    if found.achieved is None:
        label, icon = "Judge: could not decide", ":material/help:"
    elif found.achieved:
        label, icon = "Judge: goal **achieved**", ":material/gpp_bad:"
    else:
        label, icon = "Judge: not achieved", ":material/verified_user:"
    if folded:  # inside a fold: an expander cannot hold another
        st.caption(f"{label}{score}{confidence}: {common.inert(found.rationale or found.error or '')}")
        return
    with st.expander(label + score + confidence, icon=icon):
        st.markdown(common.inert(found.rationale) or "_No rationale given._")
        if found.error:
            st.error(common.inert(found.error), icon=":material/error:")
        st.caption(f"Judge model: {common.inert(found.judge_model)}")


def tool_bubble(message: r.Message) -> None:
    """A tool the agent called during its turn: name, arguments and result, all shown as text."""
    with st.chat_message("assistant", avatar=":material/build:"):
        st.caption(f"Agent called a tool · message {message.seq} · {common.inert(message.tool_name or '?')}")
        st.code(message.tool_arguments or "{}", language="json", wrap_lines=True)
        st.markdown("Result: " + common.inert(message.content))


def bubble(message: r.Message, transcript: Transcript, view: r.BattleView, folded: bool = False) -> None:
    if message.role == "tool":
        tool_bubble(message)
        return
    adversary = message.role == "user"
    with st.chat_message(
        "user" if adversary else "assistant", avatar=":material/swords:" if adversary else ":material/shield:"
    ):
        who = "Adversary" if adversary else "Agent"
        tokens = message.prompt_tokens + message.completion_tokens
        st.caption(
            f"{who} · message {message.seq} · {common.inert(message.model)} · "
            f"{tokens:,} tokens · {message.latency_ms / 1000:.1f} s"
        )
        st.markdown(common.inert(message.content))
        if not adversary:
            verdict(message, transcript.verdicts.get(message.seq), view, folded)


NOTE_LABELS = {
    "rolled_back": "roll-back",
    "goat": "observation, thought and technique",
    "crescendo": "summary and rationale",
    "pair": "improvement",
    "tap": "improvement",
    "on_topic": "on-topic check",
    "no_rollback": "no roll-backs",
}


def note_lines(message: r.Message) -> str:
    """A private note's fields as inert lines (model output)."""
    note = note_of(message)
    fields = [(k, v) for k, v in note.items() if k not in ("kind", "seqs")]
    return "  \n".join(f"**{common.inert(str(k))}:** {common.inert(str(v))}" for k, v in fields)


def note(message: r.Message, folded: bool = False) -> None:
    """The adversary's private note, folded: the target never saw it."""
    kind = str(note_of(message).get("kind", ""))
    label = f"Adversary's private note · {NOTE_LABELS.get(kind, common.inert(kind) or 'note')}"
    if folded:
        st.caption(f":material/lock: {label}  \n{note_lines(message)}")
        return
    with st.expander(label, icon=":material/lock:"):
        st.markdown(note_lines(message))
        st.caption(f"message {message.seq} · never sent to the agent")


def waiting_caption(transcript: Transcript, view: r.BattleView) -> None:
    """What a running battle waits for; nothing while the judge decides (the agent's last bubble says so)."""
    if view.finished:
        return
    last = transcript.messages[-1] if transcript.messages else None
    if view.status == "queued":
        waiting_for = "Waiting for a worker to pick the battle up…"
    elif last is not None and last.role == "assistant" and last.seq not in transcript.verdicts:
        return
    elif last is None or last.role != "user":
        waiting_for = "The adversary is writing…"
    else:
        waiting_for = "The agent is replying…"
    st.caption(f":material/more_horiz: {waiting_for}")


def conversation_flow(messages: list[r.Message], transcript: Transcript, view: r.BattleView) -> None:
    """One conversation in order: rolled-back exchanges folded in place, notes folded."""
    index = 0
    while index < len(messages):
        message = messages[index]
        if message.rolled_back:
            run = [message]
            while index + 1 < len(messages) and messages[index + 1].rolled_back:
                index += 1
                run.append(messages[index])
            with st.expander("Rolled back: the agent refused", icon=":material/undo:"):
                st.caption("The agent no longer saw this exchange; the adversary tried another step.")
                for folded in run:
                    if folded.role == "note":
                        note(folded, folded=True)
                    else:
                        bubble(folded, transcript, view, folded=True)
        elif message.role == "note":
            if rolled_back_by(message):
                pass  # its exchange is folded just above
            else:
                note(message)
        else:
            bubble(message, transcript, view)
        index += 1


def transcript_view(view: r.BattleView) -> None:
    transcript = transcript_for(view.battle_id)
    st.markdown("#### Transcript")
    if not transcript.messages and view.finished:
        st.caption("No messages were exchanged.")
    numbers = sorted({m.conversation for m in transcript.messages})
    if len(numbers) <= 1:
        conversation_flow(transcript.messages, transcript, view)
    else:
        st.caption(
            "Each conversation is a separate single-turn attempt: the agent saw only its own conversation. "
            "Scores are the judge's 1-10 grade of how close the agent came."
        )
        for number in numbers:
            messages = [m for m in transcript.messages if m.conversation == number]
            with st.expander(formatting.conversation_title(number, messages, transcript.verdicts)):
                for message in messages:
                    if message.role == "note":
                        note(message, folded=True)
                    else:
                        bubble(message, transcript, view, folded=True)
    waiting_caption(transcript, view)


def render(view: r.BattleView | None) -> None:
    if view is None:
        battle_id = str(st.query_params.get("id", ""))
        st.warning(
            f"No battle with the id {common.inert(battle_id[:64])}. The link may be incomplete, "
            "or the battle belongs to another database.",
            icon=":material/search_off:",
        )
        st.page_link(common.HUB_PAGE, label="Back to the hub", icon=":material/stadium:")
        return
    header(view)
    transcript_view(view)


def is_active(view: r.BattleView | None) -> bool:
    return view is not None and not view.finished


# -- page ------------------------------------------------------------------------------------------


def pick_a_battle() -> None:
    st.set_page_config(page_title="Battle · Sparring")
    st.title("Battle")
    rows = common.read(reads.hub_rows, [], 50)
    if rows is None or not rows.recent:
        st.info("No battles yet — start one on the hub.", icon=":material/sports_mma:")
        st.page_link(common.HUB_PAGE, label="Go to the hub", icon=":material/stadium:")
        return
    labels = {
        row.battle_id: f"{common.short_id(row.battle_id)} · {row.state} · {common.truncate(row.goal, 60)}"
        for row in rows.recent
    }
    choice = st.selectbox("Open a recent battle", list(labels), index=None, format_func=labels.__getitem__)
    if choice:
        st.query_params["id"] = choice
        st.rerun()
    st.caption("Or open one from the hub. A battle's address (…/battle?id=…) can be shared.")


def battle_page(battle_id: str) -> None:
    short = common.short_id(battle_id) if battle_id.isalnum() else ""
    st.set_page_config(page_title=f"Battle {short} · Sparring" if short else "Battle · Sparring")
    st.title(f"Battle `{short}`" if short else "Battle")
    common.live(lambda: load(battle_id), is_active, render)


battle_id = str(st.query_params.get("id", "")).strip()
if battle_id:
    battle_page(battle_id)
else:
    pick_a_battle()
