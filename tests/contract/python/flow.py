"""A chat flow through the Python client that openapi-python-client generates from chatd's OpenAPI
document, against a running server: every answer is checked as the generated client parses it
(its models and enums, not raw JSON), so a document that does not describe what the server sends
fails here.

    CHATD_URL=http://127.0.0.1:3000 python flow.py   (the generated package `chatd_client` importable)
"""

import os
import sys
from typing import TypeVar

from chatd_client import AuthenticatedClient, Client
from chatd_client.api.accounts import me, signin, signup
from chatd_client.api.conversations import (
    create_conversation,
    get_conversation,
    get_conversation_messages,
    mark_conversation_read,
    send_to_conversation,
)
from chatd_client.api.messages import get_messages, list_read_markers, mark_read, send_message
from chatd_client.api.users import search_users
from chatd_client.models import (
    ConversationDto,
    ConversationReadState,
    Credentials,
    ErrorBody,
    ErrorCode,
    HistoryDto,
    KindDto,
    Me,
    MessageDto,
    NewMessage,
    NewRoom,
    NewRoomKind,
    ReadMarker,
    ReadMarkers,
    ReadState,
    RoleDto,
    SignedUp,
    Token,
    UserDto,
)
from chatd_client.types import Response

T = TypeVar("T")
U = TypeVar("U")

# A prefix of its own, so that the TypeScript flow can share the server.
PREFIX = "py_"
PASSWORD = "contract-password"
PAGE = 3
checks = 0


def expect(response: Response[U], status: int, model: type[T]) -> T:
    """The response has this status and the generated client parsed it into this model."""
    global checks
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.content!r}"
    parsed = response.parsed
    assert isinstance(parsed, model), f"expected a {model.__name__}, the client parsed {parsed!r}"
    checks += 1
    return parsed


def expect_list(response: Response[U], model: type[T]) -> list[T]:
    """A 200 whose body the generated client parsed into a list of this model."""
    global checks
    assert response.status_code == 200, f"expected 200, got {response.status_code}: {response.content!r}"
    parsed = response.parsed
    assert isinstance(parsed, list), f"expected a list, the client parsed {parsed!r}"
    items: list[T] = []
    for item in parsed:
        assert isinstance(item, model), f"expected a {model.__name__}, the client parsed {item!r}"
        items.append(item)
    checks += 1
    return items


def expect_error(response: Response[U], status: int, code: ErrorCode) -> None:
    error = expect(response, status, ErrorBody)
    assert error.code == code, f"expected {code}, got {error.code}: {error.message}"
    assert error.message, "an error carries a message for people"


def page_all(client: AuthenticatedClient, conversation: int, backwards: bool) -> list[MessageDto]:
    """The whole timeline, a page of PAGE at a time: from the newest with `before`, or from the
    start with `after`; every page ascending, `has_more` false only on the last."""
    timeline: list[MessageDto] = []
    cursor: int | None = None
    while True:
        if backwards:
            if cursor is None:
                response = get_conversation_messages.sync_detailed(conversation, client=client, limit=PAGE)
            else:
                response = get_conversation_messages.sync_detailed(conversation, client=client, before=cursor, limit=PAGE)
        else:
            response = get_conversation_messages.sync_detailed(conversation, client=client, after=cursor or 0, limit=PAGE)
        page = expect(response, 200, HistoryDto)
        ids = [message.id for message in page.messages]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), f"a page is ascending by id: {ids}"
        assert len(ids) <= PAGE, f"a page holds at most limit={PAGE}: {ids}"
        if page.has_more:
            assert len(ids) == PAGE, f"a page before the last is full: {ids}"
        if backwards:
            timeline = page.messages + timeline
            cursor = ids[0] if ids else None
        else:
            timeline = timeline + page.messages
            cursor = ids[-1] if ids else cursor
        if not page.has_more:
            return timeline


def main() -> None:
    base_url = os.environ["CHATD_URL"]
    # An undocumented status raises instead of parsing to None: the document must list it.
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    alice, bob, carol = (PREFIX + name for name in ("alice", "bob", "carol"))

    for name in (alice, bob, carol):
        created = expect(signup.sync_detailed(client=anonymous, body=Credentials(username=name, password=PASSWORD)), 201, SignedUp)
        assert created.username == name
    expect_error(signup.sync_detailed(client=anonymous, body=Credentials(username=bob, password=PASSWORD)), 409, ErrorCode.USERNAME_TAKEN)

    def sign_in(name: str) -> AuthenticatedClient:
        token = expect(signin.sync_detailed(client=anonymous, body=Credentials(username=name, password=PASSWORD)), 200, Token)
        assert token.token_type == "Bearer" and token.username == name and token.expires_in > 0
        return AuthenticatedClient(base_url=base_url, token=token.access_token, raise_on_unexpected_status=True)

    as_alice, as_bob = sign_in(alice), sign_in(bob)
    assert expect(me.sync_detailed(client=as_alice), 200, Me).username == alice

    found = expect_list(search_users.sync_detailed(client=as_alice, q=PREFIX + "b"), UserDto)
    assert [user.username for user in found] == [bob], f"searching for {PREFIX}b: {found}"

    room = expect(
        create_conversation.sync_detailed(
            client=as_alice, body=NewRoom(kind=NewRoomKind.ROOM, name="py-contract", topic="flows", members=[bob, carol])
        ),
        201,
        ConversationDto,
    )
    assert room.kind == KindDto.ROOM and room.my_role == RoleDto.OWNER and room.member_count == 3
    assert expect(get_conversation.sync_detailed(room.id, client=as_bob), 200, ConversationDto).my_role == RoleDto.MEMBER

    # A resend with the same client_id is the same message: 201, then 200 with the stored one.
    first = expect(send_to_conversation.sync_detailed(room.id, client=as_alice, body=NewMessage(body="hello", client_id="py-1")), 201, MessageDto)
    again = expect(send_to_conversation.sync_detailed(room.id, client=as_alice, body=NewMessage(body="hello", client_id="py-1")), 200, MessageDto)
    assert (again.id, again.body, again.client_id) == (first.id, "hello", "py-1"), f"{first} then {again}"
    assert first.from_ == alice and first.conversation_id == room.id and first.kind == "text"

    sent = [first.id]
    for n in range(2, 9):
        sender = as_alice if n % 2 else as_bob
        message = expect(send_to_conversation.sync_detailed(room.id, client=sender, body=NewMessage(body=f"message {n}", client_id=f"py-{n}")), 201, MessageDto)
        sent.append(message.id)
    assert sent == sorted(sent), f"ids rise in commit order: {sent}"

    everything = expect(get_conversation_messages.sync_detailed(room.id, client=as_bob, limit=100), 200, HistoryDto)
    assert not everything.has_more
    all_ids = [message.id for message in everything.messages]
    assert [message.id for message in everything.messages if message.kind == "text"] == sent, f"{all_ids} against {sent}"
    backwards = page_all(as_bob, room.id, backwards=True)
    forwards = page_all(as_bob, room.id, backwards=False)
    assert [m.id for m in backwards] == all_ids, f"paging with before: {[m.id for m in backwards]} against {all_ids}"
    assert [m.id for m in forwards] == all_ids, f"paging with after: {[m.id for m in forwards]} against {all_ids}"
    assert len(all_ids) > PAGE * 2, "enough entries for three pages"

    marker = expect(mark_conversation_read.sync_detailed(room.id, client=as_bob, body=ReadMarker(up_to=sent[-1])), 200, ConversationReadState)
    assert (marker.conversation_id, marker.up_to) == (room.id, sent[-1])
    assert expect(get_conversation.sync_detailed(room.id, client=as_bob), 200, ConversationDto).unread == 0

    # Read markers are listed for direct conversations.
    direct = expect(send_message.sync_detailed(bob, client=as_alice, body=NewMessage(body="psst", client_id="py-direct")), 201, MessageDto)
    assert direct.to == bob
    peer_history = expect(get_messages.sync_detailed(alice, client=as_bob), 200, HistoryDto)
    assert [m.id for m in peer_history.messages] == [direct.id] and not peer_history.has_more
    read = expect(mark_read.sync_detailed(alice, client=as_bob, body=ReadMarker(up_to=direct.id)), 200, ReadState)
    assert (read.peer, read.up_to) == (alice, direct.id)
    bobs = expect_list(list_read_markers.sync_detailed(client=as_bob), ReadMarkers)
    assert [(m.username, m.read_up_to) for m in bobs] == [(alice, direct.id)], f"{bobs}"
    alices = expect_list(list_read_markers.sync_detailed(client=as_alice), ReadMarkers)
    assert [(m.username, m.peer_read_up_to) for m in alices] == [(bob, direct.id)], f"{alices}"

    expect_error(get_messages.sync_detailed(PREFIX + "nobody", client=as_alice), 404, ErrorCode.USER_NOT_FOUND)
    expect_error(get_conversation.sync_detailed(2**40, client=as_alice), 404, ErrorCode.CONVERSATION_NOT_FOUND)
    bad_token = AuthenticatedClient(base_url=base_url, token="not-a-token", raise_on_unexpected_status=True)
    expect_error(me.sync_detailed(client=bad_token), 401, ErrorCode.UNAUTHORIZED)

    print(f"python flow: {checks} responses as the generated client parsed them")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"python flow FAILED: {failure}", file=sys.stderr)
        raise
