"""Property tests of the guardrails' decision (``remediator.guards.decide``), pure: no clock, no peers.

The cases are built from situations (the breaker near its limit, peer replicas' actions, a node in
its cooldown, a promotion sent without an answer, a node counted down that a peer still reaches, a
rescue, a dry run, anything at all); each property fails unless a fifth of its examples reach the
case it guards (``must_reach``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import event, given
from hypothesis import strategies as st
from reaching import PROPERTY, SAFETY, must_reach, reached

from mxha.policy import Action, Plan
from mxha.remediator.guards import Admit, GuardMemory, GuardSettings, PeerGuardFacts, Refuse, decide

NOW = 10_000.0
SETTINGS = GuardSettings(
    cooldown_seconds=60.0, circuit_window_seconds=300.0, circuit_max_actions=4, unreachable_grace_seconds=10.0
)
NODES = ("a", "b", "c")
INF = float("inf")


@dataclass(frozen=True)
class Case:
    plan: Plan
    memory: GuardMemory
    peers: PeerGuardFacts
    settings: GuardSettings
    exempt: frozenset[str]
    rescue: bool

    def decide(self) -> Admit | Refuse:
        return decide(self.plan, self.memory, self.peers, self.settings, NOW, exempt=self.exempt, rescue=self.rescue)


SITUATIONS = (
    "breaker near its limit",  # a few actions in the window: this correction may or may not fit
    "peer actions",  # the actions in the window are a peer replica's
    "cooldown",  # a node of the plan acted on lately, by this replica or a peer
    "unsettled elsewhere",  # a promotion of another node sent without an answer
    "peer sees node",  # a node this promotion counts down answered a peer replica lately
    "rescue",  # a promotion into a cluster with none active, with the breaker or a cooldown in its way
    "dry run",
    "arbitrary",
)
PLANS = (
    (("b", "demote"), ("a", "promote")),
    (("a", "promote"),),
    (("b", "demote"),),
    (("b", "demote"), ("c", "demote"), ("a", "promote")),
    (("b", "release"),),
)

_PLAN = st.sampled_from(PLANS)
_WHOLE = st.sampled_from([p for p in PLANS if len(p) > 1])  # a correction of more than one action
_RECENT = st.floats(0, SETTINGS.cooldown_seconds * 0.99)  # seconds ago: inside the cooldown
_IN_WINDOW = st.floats(SETTINGS.cooldown_seconds, SETTINGS.circuit_window_seconds)
_OUT_OF_WINDOW = st.floats(SETTINGS.circuit_window_seconds * 1.01, 2 * SETTINGS.circuit_window_seconds)
_ANY_AGO = st.one_of(_RECENT, _IN_WINDOW, _OUT_OF_WINDOW)
_NODE = st.sampled_from(NODES)
_BOOL = st.booleans()


@st.composite
def cases(draw: st.DrawFn, only: tuple[str, ...] = SITUATIONS) -> Case:
    kind = draw(st.sampled_from(only))
    event(f"situation: {kind}")
    actions = tuple(Action(n, k) for n, k in draw(_WHOLE if kind == "breaker near its limit" else _PLAN))
    promotes = any(a.kind == "promote" for a in actions)
    plan = Plan("corrected", "test", "a", actions)
    memory, peers = GuardMemory(), PeerGuardFacts()
    settings, exempt, rescue = SETTINGS, frozenset[str](), False
    if kind in ("breaker near its limit", "peer actions", "rescue"):
        # as many actions in the window as lets this correction fit, or one or two fewer
        room = SETTINGS.circuit_max_actions - len(actions) + draw(st.sampled_from([0, 1, 1, 2]))
        ago = [draw(_IN_WINDOW) for _ in range(max(0, room))] + [draw(_OUT_OF_WINDOW)]
        times = tuple(sorted(NOW - a for a in ago))
        if kind == "peer actions":
            split = draw(st.integers(0, len(times)))
            memory = replace(memory, action_times=times[:split])
            peers = replace(peers, action_times=times[split:])
        else:
            memory = replace(memory, action_times=times)
    if kind in ("cooldown", "rescue"):
        node = draw(st.sampled_from([a.node for a in actions]))
        last = {node: NOW - draw(_RECENT)}
        memory, peers = (
            (replace(memory, last_action_at=last), peers)
            if draw(_BOOL)
            else (memory, replace(peers, last_action_at=last))
        )
        exempt = frozenset([node]) if draw(st.sampled_from([False, False, False, True])) else exempt
    if kind == "rescue":
        plan = Plan("corrected", "test", "a", (Action("a", "promote"),))
        rescue = True
        if draw(_BOOL):
            memory = replace(memory, circuit_open_until=NOW + draw(st.floats(1, 300)))
    if kind == "unsettled elsewhere" or (kind == "arbitrary" and draw(_BOOL)):
        node = draw(st.sampled_from(["b", "c"]) if kind != "arbitrary" else _NODE)
        if draw(_BOOL):
            memory = replace(memory, unsettled_promotions=frozenset([node]))
        else:
            peers = replace(peers, unsettled_promotions={node: "r2"})
        if kind == "unsettled elsewhere" and not promotes:
            plan = Plan("corrected", "test", "a", (*actions, Action("a", "promote")))
    if kind == "peer sees node" or (kind == "arbitrary" and draw(_BOOL)):
        down = draw(st.sampled_from(["b", "c"]))
        plan = replace(plan, over_down=(down,))
        seen_ago = draw(st.one_of(st.floats(0, SETTINGS.unreachable_grace_seconds * 0.99), st.floats(10, 100)))
        peers = replace(peers, answered_at={down: (NOW - seen_ago, "r2")})
    if kind in ("arbitrary", "dry run", "unsettled elsewhere", "peer sees node"):
        # any history (asked after these two refusals; a dry run must count nothing whatever came before)
        memory = replace(
            memory,
            last_action_at={n: NOW - draw(_ANY_AGO) for n in NODES if draw(_BOOL)},
            action_times=tuple(sorted(NOW - draw(_ANY_AGO) for _ in range(draw(st.integers(0, 5))))),
            circuit_open_until=draw(st.sampled_from([-INF, NOW - 1, NOW + 100])),
        )
        peers = replace(
            peers,
            last_action_at={n: NOW - draw(_ANY_AGO) for n in NODES if draw(_BOOL)},
            action_times=tuple(NOW - draw(_ANY_AGO) for _ in range(draw(st.integers(0, 5)))),
            circuit_open_until=draw(st.sampled_from([-INF, NOW + 100])),
        )
        rescue = draw(_BOOL) and all(a.kind == "promote" for a in plan.actions)
        settings = replace(settings, dry_run=kind == "dry run" or draw(st.sampled_from([False, False, False, True])))
    return Case(plan, memory, peers, settings, exempt, rescue)


def in_window(times: tuple[float, ...]) -> int:
    return sum(1 for t in times if NOW - t <= SETTINGS.circuit_window_seconds)


def counted(case: Case) -> int:
    """Every replica's actions in the window."""
    return in_window(case.memory.action_times) + in_window(case.peers.action_times)


def first_refusals(case: Case) -> bool:
    """Does an unsettled promotion or a peer's sight of a node counted down stop it first?"""
    d = case.decide()
    return isinstance(d, Refuse) and d.reason in ("unsettled_write", "peer_sees_node")


@must_reach()
@SAFETY
@given(cases(("breaker near its limit", "breaker near its limit", "peer actions", "arbitrary")))
def test_the_breaker_counts_the_whole_correction(case: Case) -> None:
    """A correction that would fit one action at a time but not whole is refused whole."""
    d = case.decide()
    guarded = not case.rescue and not case.settings.dry_run and not first_refusals(case)
    whole = counted(case) + len(case.plan.actions)
    if reached(guarded and counted(case) + 1 <= SETTINGS.circuit_max_actions < whole, "fits by halves, not whole"):
        assert isinstance(d, Refuse) and d.reason in ("circuit_open", "cooldown")  # a cooldown is asked first
    if isinstance(d, Admit) and d.count and not case.rescue:
        assert whole <= SETTINGS.circuit_max_actions


@must_reach()
@SAFETY
@given(cases(("peer actions", "peer actions", "cooldown", "arbitrary")))
def test_the_breaker_and_the_cooldown_count_every_replicas_actions(case: Case) -> None:
    """Who took an action does not matter: moving them all to this replica decides the same."""
    d = case.decide()
    theirs = in_window(case.peers.action_times) > 0 or bool(case.peers.last_action_at)
    reached(
        theirs and isinstance(d, Refuse) and d.reason in ("circuit_open", "cooldown"), "refused on a peer's actions"
    )
    last = dict(case.memory.last_action_at)
    for node, at in case.peers.last_action_at.items():
        last[node] = max(last.get(node, -INF), at)
    mine = replace(
        case,
        memory=replace(
            case.memory,
            action_times=tuple(sorted(case.memory.action_times + case.peers.action_times)),
            last_action_at=last,
            circuit_open_until=max(case.memory.circuit_open_until, case.peers.circuit_open_until),
        ),
        peers=replace(case.peers, action_times=(), last_action_at={}, circuit_open_until=-INF),
    )
    again = mine.decide()
    assert type(again) is type(d)
    if isinstance(again, Refuse) and isinstance(d, Refuse):
        assert (again.reason, again.status, again.open_circuit_until) == (d.reason, d.status, d.open_circuit_until)


@must_reach()
@PROPERTY
@given(cases(("cooldown", "cooldown", "arbitrary")))
def test_a_node_acted_on_within_the_cooldown_is_not_acted_on_again(case: Case) -> None:
    d = case.decide()
    recent = {
        a.node
        for a in case.plan.actions
        if a.node not in case.exempt
        and NOW - max(case.memory.last_action_at.get(a.node, -INF), case.peers.last_action_at.get(a.node, -INF))
        < SETTINGS.cooldown_seconds
    }
    if reached(bool(recent) and not case.rescue, "a node of the plan within its cooldown"):
        assert isinstance(d, Refuse)
    if isinstance(d, Admit) and not case.rescue:
        assert not recent


@must_reach()
@SAFETY
@given(cases(("unsettled elsewhere", "unsettled elsewhere", "arbitrary")))
def test_no_promotion_while_another_may_still_land(case: Case) -> None:
    d = case.decide()
    promoted = {a.node for a in case.plan.actions if a.kind == "promote"}
    pending = set(case.memory.unsettled_promotions) | set(case.peers.unsettled_promotions)
    if reached(bool(promoted) and bool(pending - promoted), "a promotion beside another unsettled"):
        assert isinstance(d, Refuse) and d.reason == "unsettled_write" and d.notes


@must_reach()
@SAFETY
@given(cases(("peer sees node", "peer sees node", "rescue", "arbitrary")))
def test_no_promotion_over_a_node_a_peer_replica_reaches(case: Case) -> None:
    d = case.decide()
    seen = [
        n
        for n in case.plan.over_down
        if n in case.peers.answered_at and NOW - case.peers.answered_at[n][0] < SETTINGS.unreachable_grace_seconds
    ]
    if reached(bool(seen), "a node counted down that a peer reaches"):
        assert isinstance(d, Refuse) and d.reason in ("unsettled_write", "peer_sees_node")


@must_reach()
@PROPERTY
@given(cases(("rescue", "rescue", "arbitrary")))
def test_a_rescue_passes_the_cooldown_and_the_breaker_but_nothing_else(case: Case) -> None:
    d = case.decide()
    if reached(case.rescue and not case.settings.dry_run, "a rescue"):
        assert isinstance(d, Admit) or d.reason in ("unsettled_write", "peer_sees_node")
        if isinstance(d, Admit):
            assert d.count  # a rescue's actions count like any others


@must_reach()
@PROPERTY
@given(cases(("dry run", "dry run", "cooldown", "arbitrary")))
def test_a_dry_run_counts_nothing_and_never_opens_the_breaker(case: Case) -> None:
    d = case.decide()
    if reached(case.settings.dry_run, "a dry run"):
        assert not (isinstance(d, Admit) and d.count)
        assert not (isinstance(d, Refuse) and (d.reason == "circuit_open" or d.open_circuit_until is not None))


def test_the_breaker_opens_for_its_window_and_says_so() -> None:
    plan = Plan("corrected", "test", "a", (Action("b", "demote"), Action("a", "promote")))
    memory = GuardMemory(action_times=(NOW - 10, NOW - 5, NOW - 1))
    d = decide(plan, memory, PeerGuardFacts(action_times=(NOW - 2,)), SETTINGS, NOW)
    assert isinstance(d, Refuse) and d.reason == "circuit_open" and d.status == 200
    assert d.open_circuit_until == NOW + SETTINGS.circuit_window_seconds
    assert (
        d.opened == "circuit breaker opened: 4 actions in 300s (1 by peer replicas), and this correction needs 2 more"
    )
