"""The `agents` toolset: find agents, manage their dispatches, remove them."""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

import anyio
from mcp.types import CallToolResult
from pydantic import Field

from livekit_mcp.agent_health import expect, last_join
from livekit_mcp.confirm import Plan, Planned, leaving
from livekit_mcp.errors import DispatchNotFound, LiveKitError, NotFound, ParticipantNotFound, RoomNotFound, StoreError
from livekit_mcp.history import LiveIndex, live_index
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.models import (
    SHUTDOWN_METHOD,
    SHUTDOWN_TOPIC,
    AgentArrival,
    AgentDeparture,
    AgentInfo,
    AgentList,
    Dispatch,
    DispatchInfo,
    DispatchList,
    DispatchResult,
    Participant,
    RemovedAgents,
    iso,
)
from livekit_mcp.scope import Scope
from livekit_mcp.store import Store
from livekit_mcp.text import shown
from livekit_mcp.tools._args import (
    AgentName,
    AnyAgentName,
    AnyIdentity,
    AnyRoom,
    DispatchId,
    Metadata,
    RoomName,
)
from livekit_mcp.tools._base import (
    DESTRUCTIVE,
    READ,
    SEND,
    agent_line,
    both,
    census_of_existing_room,
    matches,
    names_text,
    participants_of_existing_room,
    reply,
)
from livekit_mcp.tools._registry import Confirm, tool

# --- agents ------------------------------------------------------------------------------------------


@tool("agents", READ)
async def find_agent(
    scope: Scope,
    room: AnyRoom = "",
    agent_name: AnyAgentName = "",
) -> Annotated[CallToolResult, AgentList]:
    """Find AI agents (identity, agent name, state) in one room or in every room."""
    lk = scope.livekit
    indexed: list[AgentInfo] = []
    from_index: LiveIndex | None = None
    vouched: set[str] = set()
    if room:
        rooms, per_room = [room], [await census_of_existing_room(lk, room)]
    else:
        live = await lk.list_rooms()
        from_index = await _index_of(scope)
        # The rooms whose whole life the webhooks told: their agents come from the index, each confirmed with
        # LiveKit. Every other room is searched, the seemingly empty too: ListRooms' participant counts lag
        # (livekit-server v1.13.5 updates them every ~5 s), so a room an agent has just joined can still count 0.
        vouched = {r.name for r in live if from_index is not None and from_index.rooms.get(r.sid) == r.name}
        rooms = sorted(r.name for r in live if r.name not in vouched)
        per_room = await lk.gather(lk.census, rooms)
        if from_index is not None:
            candidates = [a for a in from_index.agents if a["room"] in vouched]
            indexed = [a for a in await lk.gather(_confirmed, [(lk, a) for a in candidates]) if a is not None]
            indexed = [a for a in indexed if not agent_name or a.agent_name == agent_name]
    agents = [
        AgentInfo.of(name, p)
        for name, census in zip(rooms, per_room, strict=True)
        for p in census.notable
        if matches(p, agent_name, "")
    ]
    agents = sorted(agents + indexed, key=lambda a: a.room)  # stable: LiveKit's order within a room
    result = AgentList(
        agents=agents,
        rooms_searched=len(rooms) + len(vouched),
        rooms_from_history=len(vouched) if from_index is not None and from_index.rooms else None,
    )
    where = f"room '{room}'" if room else f"{result.rooms_searched} room(s)"
    named = f" named '{agent_name}'" if agent_name else ""
    lines = [f"{len(agents)} agent(s){named} in {where}.", *map(agent_line, agents)]
    if result.rooms_from_history is not None:  # the webhooks told of rooms: say which way each was answered
        lines.append(
            f"({len(vouched)} room(s) answered from room history, each agent confirmed with LiveKit; {len(rooms)} "
            "searched because the webhooks could not vouch for them.)"
        )
    return reply(result, "\n".join(lines))


async def _index_of(scope: Scope) -> LiveIndex | None:
    """The live index from room history, or None (history off or down: every room is then searched)."""
    store = scope.history
    if store is None:
        return None
    try:
        return await live_index(store)
    except StoreError:
        return None


async def _confirmed(item: tuple[LiveKit, dict[str, str]]) -> AgentInfo | None:
    """An agent the index lists, as LiveKit has it now; None if it is gone (or no longer an agent)."""
    lk, agent = item
    try:
        p = await lk.get_participant(agent["room"], agent["identity"])
    except NotFound:
        return None
    return AgentInfo.of(agent["room"], p) if p.is_agent else None


@tool("agents", READ)
async def list_dispatches(scope: Scope, room: RoomName) -> Annotated[CallToolResult, DispatchList]:
    """A room's agent dispatches, their jobs, and their agents in the room now."""
    lk = scope.livekit
    # Checked first: for a room that is not live LiveKit answers ListDispatch only after ~3 s.
    await lk.get_room(room)
    found, census = await both(lambda: lk.list_dispatches(room), lambda: lk.census(room))
    agents = census.agents
    dispatches = [DispatchInfo.of(d, agents, present=census.present) for d in found]
    lines = [f"{len(dispatches)} dispatch(es) in '{room}'.", *(d.line for d in dispatches)]
    return reply(DispatchList(room=room, dispatches=dispatches), "\n".join(lines))


MAX_WAIT = 30
"""Seconds dispatch_agent may wait for the agent at most (wait_seconds' maximum)."""
LOOKS_PER_DISPATCH_CHECK = 4
"""While waiting, the dispatch itself is looked at every this many looks at the room (about once a second)."""


@tool("agents", SEND)
async def dispatch_agent(
    scope: Scope,
    room: RoomName,
    agent_name: AgentName,
    metadata: Annotated[Metadata, Field(description="Job metadata the agent receives.")] = "",
    wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT, description="Await its join this long.")] = 5,
) -> Annotated[CallToolResult, DispatchResult]:
    """Send an agent into a room (created if needed); needs a running worker for agent_name."""
    lk = scope.livekit
    existed = bool(await lk.list_rooms([room]))
    # The agents there before: one of them joining is not this dispatch's agent arriving.
    before = {p.identity for p in await lk.list_participants(room)} if existed and wait_seconds else set()
    dispatch = await lk.create_dispatch(room, agent_name, metadata)
    if scope.history is not None:  # agent health: a room this agent is now expected in (LiveKit's time, as joins')
        await expect(scope.history, agent_name, room, dispatch.id, dispatch.created_at or time.time())
    notes = [] if existed else [f"Room '{room}' did not exist and was created."]
    if wait_seconds:
        arrival = await _arrival(lk, room, dispatch, before, wait_seconds)
        if arrival.status == "not_joined" and scope.history is not None:
            arrival = await _with_last_join(scope.history, agent_name, arrival)
    else:
        arrival = AgentArrival(
            status="not_waited",
            why="The agent joins within seconds if a worker serving this agent name is free: LiveKit accepts a "
            "dispatch even when none is, and does not retry it later. get_room shows whether it joined.",
        )
    result = DispatchResult(room=room, dispatch=DispatchInfo.of(dispatch), arrival=arrival, notes=notes or None)
    return reply(
        result,
        f"Dispatched '{shown(agent_name)}' to '{shown(room)}' as {dispatch.id}. "
        + " ".join([*notes, arrival.why or ""]),
    )


async def _arrival(lk: LiveKit, room: str, dispatch: Dispatch, before: set[str], seconds: float) -> AgentArrival:
    """Waits up to `seconds` for the dispatch's agent to be in the room; otherwise what LiveKit says of the
    dispatch: gone (deleted, or its room closed), or there with no agent (and whether a worker took its job)."""
    start = anyio.current_time()
    listed: Dispatch | None = dispatch
    status: Literal["listed", "dispatch_gone", "room_gone"] = "listed"
    failure = ""
    looks = 0
    with anyio.move_on_after(seconds):
        while True:
            try:
                agent = _agent_of(listed or dispatch, await lk.list_participants(room), before)
                if agent is not None:
                    took = round(anyio.current_time() - start, 1)
                    why = f"Its agent {shown(agent.identity)} joined {took:g} s after the dispatch."
                    return AgentArrival(status="joined", identity=agent.identity, seconds=took, why=why)
                looks += 1
                if looks % LOOKS_PER_DISPATCH_CHECK == 0:
                    status, listed = await _dispatch_now(lk, room, dispatch.id)
                    if status != "listed":
                        break
            except LiveKitError as exc:  # a failed look is not an answer: look again while there is time
                failure = str(exc)
            await anyio.sleep(POLL)
    waited = round(anyio.current_time() - start, 1)
    if status == "listed":
        try:
            status, listed = await _dispatch_now(lk, room, dispatch.id)
        except LiveKitError as exc:
            failure = str(exc)
    if status == "room_gone":
        why = f"Room '{shown(room)}' is gone (deleted, or closed when empty): no agent will come for this dispatch."
        return AgentArrival(status="room_gone", seconds=waited, why=why)
    if status == "dispatch_gone":
        why = f"The dispatch is gone from room '{shown(room)}' (deleted) and no agent of it joined."
        return AgentArrival(status="dispatch_gone", seconds=waited, why=why)
    name = dispatch.agent_name
    if listed is not None and listed.jobs:
        why = (
            f"No agent of it in the room after {waited:g} s, though a worker took its job "
            f"({', '.join(f'{j.id} {j.status}' for j in listed.jobs)}): the agent may still be starting, or its job "
            "failed; get_room shows whether it joined later."
        )
    else:
        why = (
            f"No agent joined within {waited:g} s and LiveKit lists no job for this dispatch: no worker registered "
            f"for '{shown(name)}' was free to take it (none runs, it stopped, or all are at capacity), as far as "
            "LiveKit tells (its job list can lag ~5 s behind a slow start). LiveKit does not retry a dispatch: start "
            "or free a worker, then dispatch again (cancel_dispatch removes this one)."
        )
    if failure:
        why += f" (A look at LiveKit failed: {failure}.)"
    return AgentArrival(status="not_joined", seconds=waited, why=why)


async def _with_last_join(store: Store, agent_name: str, arrival: AgentArrival) -> AgentArrival:
    """What history adds to an agent that did not come: whether a worker served its name lately (so it is now
    stopped or busy), or never in the last week (none may ever have run under that name: is it spelt right?)."""
    last = await last_join(store, agent_name)
    if last is None or last.joined_at is None:
        hint = f" History has no join of '{agent_name}' in the last 7 days: is a worker for this exact name running?"
        return arrival.model_copy(update={"why": (arrival.why or "") + hint})
    when = iso(last.joined_at)
    hint = f" History saw '{agent_name}' join room '{last.room}' at {when}: a worker served it then."
    return arrival.model_copy(update={"why": (arrival.why or "") + hint, "last_joined_at": when})


def _agent_of(dispatch: Dispatch, participants: list[Participant], before: set[str]) -> Participant | None:
    """The agent in the room that came for `dispatch`: named by one of its jobs, or a new agent of its name."""
    named = {j.participant_identity for j in dispatch.jobs if j.participant_identity}
    return next(
        (
            p
            for p in participants
            if p.is_agent
            and (p.identity in named or (p.identity not in before and p.agent_name == dispatch.agent_name))
        ),
        None,
    )


async def _dispatch_now(
    lk: LiveKit, room: str, dispatch_id: str
) -> tuple[Literal["listed", "dispatch_gone", "room_gone"], Dispatch | None]:
    # The room first: for a room that is not live LiveKit answers ListDispatch only after ~3 s.
    if not await lk.list_rooms([room]):
        return "room_gone", None
    found = next((d for d in await lk.list_dispatches(room) if d.id == dispatch_id), None)
    return ("listed", found) if found is not None else ("dispatch_gone", None)


async def _cancel_dispatch_plan(scope: Scope, room: str, dispatch_id: str) -> Planned[DispatchInfo]:
    lk = scope.livekit
    # Checked first: for a room that is not live LiveKit answers ListDispatch only after ~3 s.
    participants = await participants_of_existing_room(lk, room)
    dispatch = next((d for d in await lk.list_dispatches(room) if d.id == dispatch_id), None)
    if dispatch is None:
        raise DispatchNotFound(room, dispatch_id)
    info = DispatchInfo.of(dispatch, participants)
    agents = info.agents_in_room or []
    leaving_ = f"its agent(s) {', '.join(map(shown, agents))} leave" if agents else "no agent of it is in the room"
    question = (
        f"This deletes dispatch {dispatch_id} of agent '{shown(dispatch.agent_name)}' in room '{room}'; {leaving_}."
    )
    gone = [leaving(p, "its dispatch is deleted (LiveKit ends its job)") for p in participants if p.identity in agents]
    args = {"room": room, "dispatch_id": dispatch_id}
    plan = Plan("cancel_dispatch", room, args, [dispatch_id, *agents], question, gone)
    return Planned(plan, info, DispatchResult(room=room, dispatch=info))


@tool("agents", DESTRUCTIVE, confirm=Confirm(_cancel_dispatch_plan))
async def cancel_dispatch(
    scope: Scope, room: RoomName, dispatch_id: DispatchId, planned: Planned[DispatchInfo]
) -> Annotated[CallToolResult, DispatchResult]:
    """Delete an agent dispatch: its jobs end and its agents leave the room."""
    await scope.livekit.delete_dispatch(room, dispatch_id)
    info = planned.found
    # LiveKit answers with the dispatch as it stood and ends its jobs afterwards: the agents leave within seconds.
    agents = info.agents_in_room or []
    leaving_ = (
        f" Its agent(s) {', '.join(map(shown, agents))} are leaving (LiveKit ends the jobs within seconds; "
        "find_agent shows it)."
        if agents
        else ""
    )
    result = DispatchResult(room=room, dispatch=info)
    return reply(result, f"Cancelled dispatch {dispatch_id} of '{shown(info.agent_name)}' in '{room}'.{leaving_}")


MAX_GRACE = 60
ASK_TIMEOUT = 2.5
"""Seconds an agent has to answer the shutdown RPC: below the 3 s after which livekit-server sends it again."""
POLL = 0.25
"""Seconds between looks at the room while waiting for the agents to leave."""


async def _remove_agent_plan(
    scope: Scope, room: str, agent_name: str, identity: str, keep_out: bool, grace_seconds: int
) -> Planned[tuple[list[Participant], list[Dispatch]]]:
    lk = scope.livekit
    participants = await participants_of_existing_room(lk, room)
    agents = [p for p in participants if matches(p, agent_name, identity)]
    if not agents:
        present = (
            ", ".join(f"{shown(p.identity)} ({shown(p.agent_name or '?')})" for p in participants if p.is_agent)
            or "none"
        )
        raise NotFound(f"no agent matching that in room '{room}'; agents there: {present}")
    dispatches: list[Dispatch] = []
    if keep_out:
        # "" included: an automatically dispatched agent belongs to the room's default dispatch.
        names = {p.agent_name for p in agents if p.agent_name is not None}
        identities = {p.identity for p in agents}
        dispatches = [
            d
            for d in await lk.list_dispatches(room)
            if d.agent_name in names or any(j.participant_identity in identities for j in d.jobs)
        ]
    also = (
        f" and deletes dispatch(es) {', '.join(d.id for d in dispatches)} so they are not sent back"
        if dispatches
        else ""
    )
    if grace_seconds:
        question = (
            f"This asks agent(s) {names_text(agents)} in room '{room}' to leave by themselves, waits up to "
            f"{grace_seconds} s, then removes any still there{also}."
        )
    else:
        question = f"This removes agent(s) {names_text(agents)} from room '{room}'{also}."
    args = {"room": room, "agent_name": agent_name, "identity": identity, "keep_out": keep_out}
    if grace_seconds:  # only then: a token issued before grace_seconds existed still matches a call without it
        args["grace_seconds"] = grace_seconds
    targets = [p.sid for p in agents] + [d.id for d in dispatches]
    gone = [leaving(p, "removed" if not grace_seconds else "asked to leave, then removed") for p in agents]
    plan = Plan("remove_agent", room, args, targets, question, gone)
    return Planned(plan, (agents, dispatches), _planned_removal(room, agents, dispatches))


def _planned_removal(room: str, agents: list[Participant], dispatches: list[Dispatch]) -> RemovedAgents:
    steps = [f"delete dispatch {d.id} ('{shown(d.agent_name)}')" for d in dispatches]
    return RemovedAgents(
        room=room,
        removed=[AgentInfo.of(room, p) for p in agents],
        cancelled_dispatches=[d.id for d in dispatches],
        steps=steps + [f"remove {shown(p.identity)}" for p in agents],
    )


async def _ask_to_leave(lk: LiveKit, room: str, agent: Participant, grace_seconds: int) -> str:
    """Asks one agent to end its session: the shutdown RPC, and the data message when the RPC is not answered."""
    request = json.dumps({"reason": "removed by livekit-mcp", "grace_seconds": grace_seconds})
    try:
        answer = await lk.perform_rpc(
            room, agent.identity, SHUTDOWN_METHOD, request, response_timeout=min(ASK_TIMEOUT, grace_seconds)
        )
    except (ParticipantNotFound, RoomNotFound):
        return f"it left before answering RPC {SHUTDOWN_METHOD} (LiveKit found it gone)"
    except LiveKitError as exc:
        asked = f"RPC {SHUTDOWN_METHOD} failed ({exc})"
    else:
        if answer.error is None:
            return f"RPC {SHUTDOWN_METHOD} answered '{shown(answer.payload)}'"
        code = f"{answer.error.code} " if answer.error.code is not None else ""
        asked = f"RPC {SHUTDOWN_METHOD} not answered ({code}{shown(answer.error.message)})"
    try:
        await lk.send_data(
            room, request.encode(), reliable=True, topic=SHUTDOWN_TOPIC, destination_identities=[agent.identity]
        )
        return f"{asked}; data message on topic {SHUTDOWN_TOPIC} sent"
    except LiveKitError as exc:
        return f"{asked}; the data message failed too ({exc})"


async def _wait_until_gone(lk: LiveKit, room: str, agents: list[Participant], seconds: float) -> dict[str, float]:
    """Seconds after which each agent (by sid: a relaunched agent is another one) was seen gone, within `seconds`."""
    start = anyio.current_time()
    gone: dict[str, float] = {}
    with anyio.move_on_after(seconds):
        while len(gone) < len(agents):
            try:
                present = {p.sid for p in await lk.list_participants(room)}
            except LiveKitError:
                present = {p.sid for p in agents}  # a failed look sees nobody leave; the removal settles it
            for p in agents:
                if p.sid not in present and p.identity not in gone:
                    gone[p.identity] = round(anyio.current_time() - start, 1)
            if len(gone) < len(agents):
                await anyio.sleep(POLL)
    return gone


@tool("agents", DESTRUCTIVE, confirm=Confirm(_remove_agent_plan))
async def remove_agent(
    scope: Scope,
    room: RoomName,
    planned: Planned[tuple[list[Participant], list[Dispatch]]],
    agent_name: AnyAgentName = "",
    identity: AnyIdentity = "",
    keep_out: Annotated[bool, Field(description="Also delete their dispatches, so they are not sent back.")] = True,
    grace_seconds: Annotated[
        int, Field(ge=0, le=MAX_GRACE, description="First ask them to leave by themselves and wait up to this long.")
    ] = 0,
) -> Annotated[CallToolResult, RemovedAgents]:
    """Remove the AI agent(s) from a room and, by default, their dispatches so they stay out."""
    lk = scope.livekit
    agents, dispatches = planned.found
    steps: list[str] = []
    departures: dict[str, AgentDeparture] = {}
    if grace_seconds:
        # The courtesy comes before the dispatches are deleted: that would end the jobs, and the agents with them.
        asked = await lk.gather(lambda p: _ask_to_leave(lk, room, p, grace_seconds), agents)
        gone = await _wait_until_gone(lk, room, agents, grace_seconds)
        for p, how in zip(agents, asked, strict=True):
            left = "by_itself" if p.identity in gone else "removed_after_grace"
            seconds = gone.get(p.identity)
            departures[p.identity] = AgentDeparture(identity=p.identity, left=left, asked=how, seconds=seconds)
            if p.identity in gone:
                steps.append(f"{shown(p.identity)} left by itself {gone[p.identity]:g} s after the request")
    # Dispatches go first: on LiveKit Cloud a restart policy could relaunch an agent removed before them.
    for d in dispatches:
        await lk.delete_dispatch(room, d.id)
        steps.append(f"deleted dispatch {d.id} ('{shown(d.agent_name)}')")
    if keep_out and not dispatches:
        steps.append("no dispatch of these agents to delete")
    for p in agents:
        departure = departures.get(p.identity)
        if departure is not None and departure.left == "by_itself":
            continue
        try:
            await lk.remove_participant(room, p.identity)
            after = f" after the {grace_seconds} s grace period" if departure is not None else ""
            steps.append(f"removed {shown(p.identity)}{after}")
        except (ParticipantNotFound, RoomNotFound):
            if departure is not None:
                departure.left = "ended_with_dispatch"
            steps.append(f"{shown(p.identity)} had already left (its job ended with its dispatch)")
    if not keep_out:
        steps.append("dispatches kept: LiveKit Cloud may send the agent back; call again with keep_out=true")
    update = {"steps": steps, "departures": list(departures.values()) or None}
    result = _planned_removal(room, agents, dispatches).model_copy(update=update)
    return reply(result, f"Removed {len(agents)} agent(s) from '{room}': " + "; ".join(steps) + ".")
