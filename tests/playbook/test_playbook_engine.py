"""Engine behaviour: ordering, parallelism, foreach, templates, retries, timeouts, failure policy,
observers, fencing epoch, cancellation and resume from the journal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.core import errors, secrets
from failover.playbook import engine, loader, observers
from failover.playbook.observers import RunObserver
from failover.store import RunPhase, RunRecord, StepRecord, StepStatus, sqlite
from tests.playbook import pb_actions


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite.SqliteStore]:
    s = sqlite.SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


def make(store: sqlite.SqliteStore, *observers: RunObserver) -> tuple[engine.Engine, pb_actions.Services]:
    services = pb_actions.Services()
    return engine.Engine(store=store, services=services, observers=observers, retry_base_delay=0.01,
                         retry_max_delay=1.0), services


async def run_text(store: sqlite.SqliteStore, text: str, *observers: RunObserver,
                   params: dict[str, object] | None = None) -> tuple[RunRecord, pb_actions.Services]:
    eng, services = make(store, *observers)
    run_id = await eng.start(loader.load_text(text, "t.yaml"), params=params or {})  # type: ignore[arg-type]
    return await eng.execute(run_id), services


def span(services: pb_actions.Services, key: str) -> tuple[float, float]:
    start = next(t for k, e, t in services.events if k == key and e == "start")
    end = [t for k, e, t in services.events if k == key and e == "end"][-1]
    return start, end


def statuses(store: sqlite.SqliteStore, run_id: str) -> list[tuple[str, int, str]]:
    return [(r.key, r.attempt, r.status.value) for r in store.step_records(run_id)]


async def test_stages_run_in_order_and_steps_of_a_stage_in_parallel(store: sqlite.SqliteStore) -> None:
    run, services = await run_text(store, """name: t
stages:
  - name: one
    steps:
      - {id: p1, uses: t-echo, with: {sleep: 0.15}}
      - {id: p2, uses: t-echo, with: {sleep: 0.15}}
  - name: two
    steps:
      - {id: q, uses: t-echo}
""")
    assert run.phase is RunPhase.SUCCEEDED
    (s1, e1), (s2, e2), (sq, _) = span(services, "p1"), span(services, "p2"), span(services, "q")
    assert s2 < e1 and s1 < e2, "steps of one stage overlap"
    assert sq >= max(e1, e2), "the next stage starts after the whole stage ended"
    assert e2 - s1 < 0.28
    assert [k for k, _, st in statuses(store, run.id) if st == "succeeded"] == ["p1", "p2", "q"] or \
        [k for k, _, st in statuses(store, run.id) if st == "succeeded"] == ["p2", "p1", "q"]


FOREACH = """name: t
stages:
  - name: one
    steps:
      - id: each
        uses: t-echo
        foreach: [1, 2, 3]
        as: n
        sequential: {seq}
        with: {{value: "{{{{ n }}}}", sleep: 0.1}}
  - name: two
    steps:
      - {{id: after, uses: t-read, with: {{value: "{{{{ outputs.each.items }}}}"}}}}
"""


async def test_foreach_sequential_runs_items_in_order(store: sqlite.SqliteStore) -> None:
    run, services = await run_text(store, FOREACH.format(seq="true"))
    assert run.phase is RunPhase.SUCCEEDED
    spans = [span(services, f"each[n={i}]") for i in (1, 2, 3)]
    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
    after = next(r for r in store.step_records(run.id) if r.key == "after")
    assert after.output == {"value": [{"value": i, "key": f"each[n={i}]", "attempt": 1} for i in (1, 2, 3)]}


async def test_foreach_parallel_overlaps_and_journals_one_record_per_item(store: sqlite.SqliteStore) -> None:
    run, services = await run_text(store, FOREACH.format(seq="false"))
    spans = [span(services, f"each[n={i}]") for i in (1, 2, 3)]
    assert max(s for s, _ in spans) < min(e for _, e in spans), "all iterations run at once"
    keys = sorted(k for k, _, st in statuses(store, run.id) if st == "succeeded")
    assert keys == ["after", "each[n=1]", "each[n=2]", "each[n=3]"]


async def test_sequential_foreach_stops_at_the_first_failed_item(store: sqlite.SqliteStore) -> None:
    run, services = await run_text(store, """name: t
stages:
  - name: one
    steps:
      - id: each
        uses: t-echo
        foreach: [ok, bad, never]
        sequential: true
        with: {value: "{{ item }}", permanent: false}
""".replace("permanent: false", "boom: \"{{ item }}\"").replace("[ok, bad, never]", "[\"\", bad, never]"))
    assert run.phase is RunPhase.FAILED
    assert "each[item=bad]" in (run.error or "")
    assert not any(k == "each[item=never]" for k, _, _ in services.events)


async def test_templates_keep_types_when_whole_and_interpolate_otherwise(store: sqlite.SqliteStore) -> None:
    run, _ = await run_text(store, """name: t
params:
  n: {type: int, required: true}
  names: {type: list, default: [a, b]}
  flag: {type: bool, default: true}
stages:
  - name: one
    steps:
      - {id: src, uses: t-read, with: {value: {list: "{{ params.names }}", n: "{{ params.n }}"}}}
  - name: two
    steps:
      - id: use
        uses: t-read
        with:
          value:
            typed: "{{ outputs.src.value.list }}"
            count: "{{ params.n }}"
            flag: "{{ params.flag }}"
            text: "n={{ params.n }} names={{ outputs.src.value.list }} run {{ run.id }}@{{ run.epoch }}"
            first: "{{ outputs.src.value.list.0 }}"
""", params={"n": 3})
    use = next(r for r in store.step_records(run.id) if r.key == "use")
    assert use.output == {"value": {"typed": ["a", "b"], "count": 3, "flag": True,
                                    "text": f"n=3 names=[\"a\",\"b\"] run {run.id}@0", "first": "a"}}


async def test_missing_required_param_is_refused_before_the_run_exists(store: sqlite.SqliteStore) -> None:
    eng, _ = make(store)
    playbook = loader.load_text("name: t\nparams:\n  to: {type: str, required: true}\n"
                                "stages:\n  - name: s\n    steps: [{id: a, uses: t-read}]\n", "t.yaml")
    with pytest.raises(errors.PlaybookError, match="param to: required"):
        await eng.start(playbook, params={})
    assert store.list_runs() == []


async def test_retries_honour_the_requested_delay_then_succeed(store: sqlite.SqliteStore) -> None:
    t0 = time.monotonic()
    run, _ = await run_text(store, """name: t
stages:
  - name: s
    steps:
      - {id: flaky, uses: t-echo, with: {fail_times: 2, fail_delay: 0.1}, retries: 2}
""")
    assert run.phase is RunPhase.SUCCEEDED
    assert time.monotonic() - t0 >= 0.2, "each retry waited the delay the error asked for"
    assert statuses(store, run.id) == [("flaky", 1, "retrying"), ("flaky", 2, "retrying"),
                                       ("flaky", 3, "succeeded")]
    assert store.step_records(run.id)[-1].output == {"value": None, "key": "flaky", "attempt": 3}


async def test_retries_give_up_and_fail_the_run(store: sqlite.SqliteStore) -> None:
    run, _ = await run_text(store, """name: t
stages:
  - name: s
    steps:
      - {id: flaky, uses: t-echo, with: {fail_times: 9, fail_delay: 0.01}, retries: 1}
""")
    assert run.phase is RunPhase.FAILED and run.error == "step flaky failed: flaky not yet"
    assert statuses(store, run.id) == [("flaky", 1, "retrying"), ("flaky", 2, "failed")]


async def test_timeout_is_a_temporary_error_and_is_retried(store: sqlite.SqliteStore) -> None:
    t0 = time.monotonic()
    run, _ = await run_text(store, """name: t
stages:
  - name: s
    steps:
      - {id: slow, uses: t-echo, with: {sleep: 5}, timeout: 100ms, retries: 1}
""")
    assert time.monotonic() - t0 < 1.5
    assert run.phase is RunPhase.FAILED
    records = store.step_records(run.id)
    assert [r.status for r in records] == [StepStatus.RETRYING, StepStatus.FAILED]
    assert all(r.error == "t-echo timed out after 0.1s" for r in records)
    assert all(r.duration is not None and 0.09 <= r.duration < 1.0 for r in records)


ABORT = """name: t
stages:
  - name: one
    steps:
      - {id: bad, uses: t-echo, with: {permanent: true}, retries: 3, on_failure: POLICY}
      - {id: sibling, uses: t-echo, with: {sleep: 0.1}}
  - name: two
    steps:
      - {id: later, uses: t-echo}
"""


async def test_on_failure_abort_lets_the_stage_finish_then_fails_the_run(store: sqlite.SqliteStore) -> None:
    run, _ = await run_text(store, ABORT.replace("POLICY", "abort"))
    assert run.phase is RunPhase.FAILED and run.error == "step bad failed: bad refuses"
    assert sorted(statuses(store, run.id)) == [("bad", 1, "failed"), ("later", 0, "skipped"),
                                               ("sibling", 1, "succeeded")]


async def test_on_failure_continue_goes_on(store: sqlite.SqliteStore) -> None:
    run, _ = await run_text(store, ABORT.replace("POLICY", "continue"))
    assert run.phase is RunPhase.SUCCEEDED and run.error is None
    journal = statuses(store, run.id)
    assert ("bad", 1, "failed") in journal and ("later", 1, "succeeded") in journal


async def test_unexpected_exception_becomes_a_failed_step_with_a_redacted_message(
        store: sqlite.SqliteStore) -> None:
    secret = "s3cr3t-token-value-42"
    secrets.register(secret)
    run, _ = await run_text(store, f"""name: t
stages:
  - name: s
    steps:
      - {{id: b, uses: t-echo, with: {{boom: "bad token {secret}"}}}}
""")
    (rec,) = store.step_records(run.id)
    assert rec.status is StepStatus.FAILED and rec.error == "RuntimeError: bad token ***"
    assert secret not in (run.error or "") and "***" in (run.error or "")


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def run_started(self, run: RunRecord) -> None:
        self.seen.append(f"run {run.phase}")

    async def step_started(self, run: RunRecord, step: StepRecord) -> None:
        self.seen.append(f"start {step.key} {step.status}")

    async def step_progress(self, run: RunRecord, step: StepRecord, message: str) -> None:
        self.seen.append(f"progress {message}")

    async def step_finished(self, run: RunRecord, step: StepRecord) -> None:
        self.seen.append(f"end {step.key} {step.status}")

    async def run_finished(self, run: RunRecord) -> None:
        self.seen.append(f"done {run.phase}")


class Broken(RunObserver):
    async def step_started(self, run: RunRecord, step: StepRecord) -> None:
        raise RuntimeError("observer bug")

    async def run_finished(self, run: RunRecord) -> None:
        raise ValueError("observer bug")


async def test_a_broken_observer_never_aborts_the_run_and_others_see_every_event(
        store: sqlite.SqliteStore) -> None:
    recorder = Recorder()
    run, _ = await run_text(store, "name: t\nstages:\n  - name: s\n    steps: [{id: a, uses: t-echo}]\n",
                            Broken(), recorder)
    assert run.phase is RunPhase.SUCCEEDED
    assert recorder.seen == ["run running", "start a running", "progress echo a attempt 1", "end a succeeded",
                             "done succeeded"]
    assert store.step_records(run.id)[0].progress == ("echo a attempt 1",)


async def test_a_stale_epoch_is_refused_without_retry_and_fails_the_run(store: sqlite.SqliteStore) -> None:
    eng, services = make(store)
    playbook = loader.load_text("""name: t
stages:
  - name: s
    steps:
      - {id: look, uses: t-read, on_failure: continue}
      - {id: act, uses: t-echo, retries: 3, on_failure: continue}
""", "t.yaml")
    run_id = await eng.start(playbook, params={})
    assert store.bump_epoch() == 1  # a newer actor took over after this run was created
    run = await eng.execute(run_id)
    assert run.phase is RunPhase.FAILED, "a stale epoch fails the run even with on_failure: continue"
    assert sorted(statuses(store, run_id)) == [("act", 1, "failed"), ("look", 1, "succeeded")]
    assert "StaleEpochError" in (run.error or "") and services.events == [], "the action never ran"


class StartedB(RunObserver):
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def step_started(self, run: RunRecord, step: StepRecord) -> None:
        if step.key == "b":
            self.event.set()


async def test_cancelling_journals_interrupted_and_a_second_execute_resumes(
        store: sqlite.SqliteStore) -> None:
    started = StartedB()
    eng, services = make(store, started)
    playbook = loader.load_text("""name: t
stages:
  - name: one
    steps: [{id: a, uses: t-echo, with: {value: 1}}]
  - name: two
    steps: [{id: b, uses: t-echo, with: {sleep: 0.3, value: "{{ outputs.a.value }}"}}]
""", "t.yaml")
    run_id = await eng.start(playbook, params={})
    task = asyncio.ensure_future(eng.execute(run_id))
    await asyncio.wait_for(started.event.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    run = store.get_run(run_id)
    assert run is not None and run.phase is RunPhase.RUNNING
    assert statuses(store, run_id) == [("a", 1, "succeeded"), ("b", 1, "interrupted")]
    final = await eng.execute(run_id)
    assert final.phase is RunPhase.SUCCEEDED
    assert statuses(store, run_id)[-1] == ("b", 2, "succeeded")
    assert [k for k, e, _ in services.events if e == "start"] == ["a", "b", "b"], "a is not run again"


async def test_resume_after_a_dead_process_skips_succeeded_steps(store: sqlite.SqliteStore) -> None:
    eng, services = make(store)
    playbook = loader.load_text("""name: t
stages:
  - name: one
    steps: [{id: a, uses: t-echo, with: {value: 7}}]
  - name: two
    steps: [{id: b, uses: t-read, with: {value: "{{ outputs.a.value }}"}}]
""", "t.yaml")
    run_id = await eng.start(playbook, params={})
    store.update_run(run_id, phase=RunPhase.RUNNING)
    a = store.record_step_start(run_id, "a", step_id="a", attempt=1)
    store.record_step_end(a.record_id, status=StepStatus.SUCCEEDED, output={"value": 99})
    store.record_step_start(run_id, "b", step_id="b", attempt=1)  # the process died here
    (resumed,) = await eng.resume_all()
    assert resumed.phase is RunPhase.SUCCEEDED
    assert services.events == [], "a was not executed again"
    assert statuses(store, run_id) == [("a", 1, "succeeded"), ("b", 1, "interrupted"), ("b", 2, "succeeded")]
    assert store.step_records(run_id)[-1].output == {"value": 99}, "outputs come from the journal"


async def test_a_run_waiting_for_approval_runs_only_once_approved(store: sqlite.SqliteStore) -> None:
    eng, services = make(store)
    text = "name: t\nstages:\n  - name: s\n    steps: [{id: a, uses: t-echo}]\n"
    run_id = await eng.start(loader.load_text(text, "t.yaml"), params={}, wait_for_approval=True)
    assert (await eng.execute(run_id)).phase is RunPhase.WAITING_APPROVAL and services.events == []
    assert await eng.resume_all() == []
    store.approve_run(run_id, "alice")
    run = await eng.execute(run_id)
    assert run.phase is RunPhase.SUCCEEDED and run.approved_by == "alice"


class Hangs(RunObserver):
    async def step_started(self, run: RunRecord, step: StepRecord) -> None:
        await asyncio.sleep(60)


async def test_a_hung_observer_is_abandoned_after_its_timeout(store: sqlite.SqliteStore) -> None:
    run = store.create_run(playbook="p", kind="drill", params={}, epoch=0)
    step = store.record_step_start(run.id, "a", step_id="a", attempt=1)
    recorder = Recorder()
    t0 = time.monotonic()
    await observers.notify([Hangs(), recorder], lambda o: o.step_started(run, step), timeout=0.05)
    assert time.monotonic() - t0 < 1 and recorder.seen == ["start a running"]
