"""A scale test over a matrix of an HTTP agent and a model agent (the fake service, a sim model)."""

from __future__ import annotations

import json

from jobs import embedded, runs
from sparring import runtime
from sparring.report import run_stats
from tests.fakes import agent_server as fake_agent
from tests.fakes.agent_server import FakeAgentServer
from tests.helpers import rows, scalar, wait_until

agent_server = fake_agent.agent_server

TERMINAL = ("finished", "cancelled", "stopped", "failed")


def test_a_matrix_of_an_http_agent_and_a_model_agent(agent_server: FakeAgentServer) -> None:
    embedded.start(threads=4)
    http_agent = {
        "kind": "http",
        "target": {
            "url": agent_server.url,
            "request": '{"message": {{message}}, "sid": {{session_id}}}',
            "response": "data.text",
            "session": "stateful",
        },
    }
    run_id = runs.submit_run(
        {"runs": 4, "max_messages": 4, "seed": 11, "agents": [http_agent, {"model": "sim/agent?concede=1"}]}
    )
    wait_until(lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL, 120)
    result = run_stats(runtime.get_runtime().store, run_id)
    by_label = {cell["label"]: cell for cell in result["cells"]}
    assert set(by_label) == {agent_server.url, "sim/agent?concede=1"}
    assert by_label[agent_server.url]["rate"] == 0.0  # the service never concedes
    assert by_label["sim/agent?concede=1"]["rate"] == 1.0
    stored = rows(
        "SELECT DISTINCT agent_kind, agent_model, agent_target IS NULL FROM battles WHERE run_id = ? ORDER BY 1",
        [run_id],
    )
    assert stored == [("http", agent_server.url, False), ("model", "sim/agent?concede=1", True)]
    # Each HTTP battle is its own session with the service, sent only its latest message.
    sessions = {request.body["sid"] for request in agent_server.requests}
    assert len(sessions) == 4 and len(agent_server.requests) == 8
    assert all(isinstance(request.body["message"], str) for request in agent_server.requests)
    config = json.loads(scalar("SELECT config FROM scale_runs WHERE run_id = ?", [run_id]))
    assert any(cell["battle"]["agent_kind"] == "http" for cell in config["cells"])
