import { TestBed } from '@angular/core/testing';
import { Api } from '../api/api';
import {
  FakeApi,
  FakeSocket,
  directSummary,
  message,
  roomMessage,
  roomSummary,
  settle,
} from '../../testing/fakes';
import { ChatStore, applyChange, conversationTitle, seenBy, type Conversation } from './chat-store';
import { SOCKET_FACTORY, type EventFrame } from './realtime';
import { Session } from './session';

const DESIGN = 7;

describe('ChatStore with groups and rooms', () => {
  let api: FakeApi;
  let store: ChatStore;

  beforeEach(() => {
    vi.useFakeTimers();
    localStorage.clear();
    FakeSocket.created = [];
    api = new FakeApi();
    TestBed.configureTestingModule({
      providers: [
        { provide: Api, useValue: api },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
    store = TestBed.inject(ChatStore);
  });

  afterEach(() => {
    store.stop();
    vi.useRealTimers();
  });

  async function startConnected(): Promise<FakeSocket> {
    await store.start();
    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 0 });
    return socket;
  }

  function event(id: number, change: object, conversationId = DESIGN): EventFrame {
    return {
      id,
      conversation_id: conversationId,
      created_at: new Date(Date.UTC(2026, 10, 24, 11, 0, id % 60)).toISOString(),
      ...change,
    } as EventFrame;
  }

  const design = (extra: Parameters<typeof roomSummary>[1] = {}) =>
    roomSummary(DESIGN, {
      name: 'design',
      topic: 'pixels',
      visibility: 'private',
      members: [
        { username: 'alice', role: 'owner' },
        { username: 'bob', role: 'admin', online: true },
        { username: 'carol' },
      ],
      lastActivity: 20,
      ...extra,
    });

  it('lists rooms, groups and direct conversations by activity, with members, roles and unread', async () => {
    api.conversationsResult = [
      design({ unread: 2, last: roomMessage(DESIGN, 'bob', 'hi', { id: 30 }), lastActivity: 31 }),
      directSummary('dave', { last: message('dave', 'alice', 'yo', { id: 25 }) }),
      roomSummary(3, {
        kind: 'group',
        name: null,
        members: [{ username: 'alice' }, { username: 'erin' }, { username: 'finn' }],
        lastActivity: 12,
      }),
    ];
    await startConnected();
    const list = store.conversations();
    expect(list.map((c) => store.title(c))).toEqual(['design', 'dave', 'erin and finn']);
    expect(list[0]).toMatchObject({
      key: '#7',
      kind: 'room',
      topic: 'pixels',
      visibility: 'private',
      memberCount: 3,
      myRole: 'owner',
      unread: 2,
    });
    expect(list[0].members.map((m) => `${m.username}:${m.role}`)).toEqual([
      'alice:owner',
      'bob:admin',
      'carol:member',
    ]);
    // Members share presence within the room.
    expect(store.isOnline('bob')).toBe(true);
    expect(store.totalUnread()).toBe(2);
  });

  it('shows a conversation I was added to, on every device, live, with its details fetched', async () => {
    const socket = await startConnected();
    api.details.set(
      DESIGN,
      design({ unread: 1, last: roomMessage(DESIGN, 'bob', 'the plan', { id: 18 }) }),
    );
    socket.receive(
      event(20, {
        type: 'member_added',
        by: 'bob',
        members: [{ username: 'alice', role: 'member' }],
      }),
    );
    await settle();
    const c = store.conversation('#7')!;
    expect(c).toMatchObject({ name: 'design', standing: 'member', unread: 1, detailsLoaded: true });
    expect(store.conversations().map((x) => x.key)).toEqual(['#7']);
    expect(api.detailRequests).toEqual([DESIGN]);
    // The addition is a line in the timeline, once even if the frame comes again.
    socket.receive(
      event(20, {
        type: 'member_added',
        by: 'bob',
        members: [{ username: 'alice', role: 'member' }],
      }),
    );
    expect(c.messages.filter((m) => m.kind === 'event').map((m) => m.id)).toEqual([20]);
  });

  it('shows a conversation created on another of my devices without asking the server', async () => {
    const socket = await startConnected();
    socket.receive(
      event(
        40,
        {
          type: 'conversation_created',
          by: 'alice',
          kind: 'group',
          name: null,
          topic: null,
          visibility: null,
          members: [
            { username: 'alice', role: 'member' },
            { username: 'bob', role: 'member' },
            { username: 'carol', role: 'member' },
          ],
        },
        9,
      ),
    );
    const c = store.conversation('#9')!;
    expect(c).toMatchObject({
      kind: 'group',
      memberCount: 3,
      myRole: 'member',
      standing: 'member',
    });
    expect(store.title(c)).toBe('bob and carol');
    expect(store.conversations().map((x) => x.key)).toEqual(['#9']);
    expect(api.detailRequests).toEqual([]);
  });

  it('drops a private room I was removed from, with what I had read of it', async () => {
    api.conversationsResult = [design()];
    api.pages.set('#7:', {
      messages: [roomMessage(DESIGN, 'bob', 'secret plans', { id: 19 })],
      has_more: false,
    });
    const socket = await startConnected();
    await store.loadLatest('#7');
    expect(store.conversation('#7')!.messages).toHaveLength(1);

    socket.receive(event(21, { type: 'member_removed', by: 'bob', username: 'alice' }));
    const c = store.conversation('#7')!;
    expect(c).toMatchObject({ standing: 'removed', standingBy: 'bob', myRole: null, unread: 0 });
    expect(c.messages).toEqual([]);
    expect(store.conversations()).toEqual([]);
    // Nothing written after the removal reaches it, even if it were delivered.
    socket.receive({
      type: 'receive_message',
      message: roomMessage(DESIGN, 'bob', 'after', { id: 22 }),
    });
    expect(store.totalUnread()).toBe(0);
  });

  it('keeps a public room I left listed as left, readable, with the line saying so', async () => {
    api.conversationsResult = [design({ visibility: 'public' })];
    const socket = await startConnected();
    socket.receive(event(21, { type: 'member_removed', by: 'alice', username: 'alice' }));
    const c = store.conversation('#7')!;
    expect(c).toMatchObject({ standing: 'left', myRole: null, memberCount: 2 });
    expect(c.messages.map((m) => m.event?.type)).toEqual(['member_removed']);
    expect(store.conversations().map((x) => x.key)).toEqual(['#7']);
  });

  it('removes a deleted room for everyone', async () => {
    api.conversationsResult = [design()];
    const socket = await startConnected();
    socket.receive(event(22, { type: 'conversation_removed', by: 'bob' }));
    expect(store.conversation('#7')).toMatchObject({ standing: 'deleted', standingBy: 'bob' });
    expect(store.conversations()).toEqual([]);
  });

  it('follows renames, topics, archiving, roles and members, and an older list never undoes them', async () => {
    api.conversationsResult = [design()];
    const socket = await startConnected();
    socket.receive(
      event(21, { type: 'conversation_updated', by: 'bob', name: 'Design team', topic: '' }),
    );
    socket.receive(event(22, { type: 'conversation_updated', by: 'bob', archived: true }));
    socket.receive(
      event(23, { type: 'role_changed', by: 'alice', username: 'carol', role: 'admin' }),
    );
    socket.receive(
      event(24, {
        type: 'member_added',
        by: 'bob',
        members: [{ username: 'dave', role: 'member' }],
      }),
    );
    socket.receive(event(25, { type: 'member_removed', by: 'bob', username: 'bob' }));
    let c = store.conversation('#7')!;
    expect(c).toMatchObject({ name: 'Design team', topic: null, archived: true, memberCount: 3 });
    expect(c.members.map((m) => `${m.username}:${m.role}`)).toEqual([
      'alice:owner',
      'carol:admin',
      'dave:member',
    ]);

    // A list fetched before those changes answers late: the details stay as the events left them.
    await store.refreshList();
    c = store.conversation('#7')!;
    expect(c).toMatchObject({ name: 'Design team', archived: true, memberCount: 3 });
    // One that includes them is taken as it is.
    api.conversationsResult = [design({ name: 'Design team', archived: true, lastActivity: 25 })];
    await store.refreshList();
    expect(store.conversation('#7')!.memberCount).toBe(3);
  });

  it('counts event ids in the sync cursor, from the list and from frames', async () => {
    api.conversationsResult = [design({ lastActivity: 20 })];
    const first = await startConnected();
    expect(first.sentOfType('sync')).toEqual([{ type: 'sync', after: 20 }]);
    first.receive(event(26, { type: 'conversation_updated', by: 'bob', name: 'ux' }));
    first.drop();
    vi.advanceTimersByTime(1000);
    const second = FakeSocket.latest();
    second.open();
    second.receive({ type: 'ready', username: 'alice', last_id: 30 });
    expect(second.sentOfType('sync')).toEqual([{ type: 'sync', after: 26 }]);
    // The catch-up repeats nothing it has applied and brings the rest.
    second.receive(event(26, { type: 'conversation_updated', by: 'bob', name: 'ux' }));
    second.receive(event(29, { type: 'conversation_updated', by: 'carol', name: 'UX' }));
    second.receive({ type: 'sync_done', last_id: 29 });
    const c = store.conversation('#7')!;
    expect(c.name).toBe('UX');
    expect(c.messages.map((m) => m.id)).toEqual([26, 29]);
  });

  it('sends, types and reads in a group by conversation id, and over REST when the socket is down', async () => {
    api.conversationsResult = [roomSummary(3, { kind: 'group', name: 'lunch' })];
    await store.start();
    api.sendImpl = (target, body, clientId) =>
      Promise.resolve(roomMessage(Number(target), 'alice', body, { id: 40, client_id: clientId }));
    store.send('#3', 'soup?');
    await settle();
    expect(api.sends.map((s) => s.peer)).toEqual([3]);
    expect(store.conversation('#3')!.messages.map((m) => [m.id, m.state])).toEqual([[40, 'sent']]);

    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 40 });
    store.send('#3', 'or salad');
    store.typing('#3');
    const sent = socket.sentOfType('send_message').at(-1)!;
    expect(sent).toMatchObject({ conversation_id: 3, body: 'or salad' });
    expect('to' in sent).toBe(false);
    store.typing('#3');
    expect(socket.sentOfType('typing')).toEqual([{ type: 'typing', conversation_id: 3 }]);

    socket.receive({
      type: 'receive_message',
      message: roomMessage(3, 'bob', 'salad', { id: 42 }),
    });
    store.open('#3');
    store.setViewport('#3', true);
    TestBed.tick();
    await settle();
    expect(socket.sentOfType('read')).toEqual([{ type: 'read', conversation_id: 3, up_to: 42 }]);
  });

  it('shows who is typing in a group, and counts only other people’s messages as unread', async () => {
    api.conversationsResult = [roomSummary(3, { kind: 'group', name: 'lunch' })];
    const socket = await startConnected();
    socket.receive({ type: 'typing', conversation_id: 3, from: 'bob' });
    socket.receive({ type: 'typing', conversation_id: 3, from: 'carol' });
    expect(store.conversation('#3')!.typing).toEqual(['bob', 'carol']);
    socket.receive({ type: 'receive_message', message: roomMessage(3, 'bob', 'here', { id: 50 }) });
    expect(store.conversation('#3')!.typing).toEqual(['carol']);
    socket.receive({
      type: 'receive_message',
      message: roomMessage(3, 'alice', 'me too', { id: 51 }),
    });
    socket.receive(event(52, { type: 'conversation_updated', by: 'bob', name: 'dinner' }, 3));
    expect(store.conversation('#3')!.unread).toBe(1);
  });

  it('computes "seen by" from members’ read markers and live read frames', async () => {
    api.conversationsResult = [
      roomSummary(3, {
        kind: 'group',
        members: [
          { username: 'alice', read_up_to: 60 },
          { username: 'bob', read_up_to: 60 },
          { username: 'carol', read_up_to: 55 },
        ],
        last: roomMessage(3, 'alice', 'done', { id: 60 }),
      }),
    ];
    const socket = await startConnected();
    expect(seenBy(store.conversation('#3')!, 60, 'alice')).toEqual(['bob']);
    socket.receive({ type: 'read', conversation_id: 3, peer: 'carol', up_to: 61 });
    socket.receive({ type: 'read', conversation_id: 3, peer: 'bob', up_to: 58 });
    expect(seenBy(store.conversation('#3')!, 60, 'alice')).toEqual(['bob', 'carol']);
  });

  it('applies my own leaving at once, and its event later without counting it twice', async () => {
    api.conversationsResult = [design({ visibility: 'public' })];
    const socket = await startConnected();
    await store.leave('#7');
    expect(api.calls).toEqual(['remove 7 alice']);
    expect(store.conversation('#7')).toMatchObject({ standing: 'left', memberCount: 2 });
    socket.receive(event(21, { type: 'member_removed', by: 'alice', username: 'alice' }));
    expect(store.conversation('#7')).toMatchObject({ standing: 'left', memberCount: 2 });
  });

  it('joins a public room from the directory and takes in what the server answers', async () => {
    await startConnected();
    api.details.set(DESIGN, design({ visibility: 'public', myRole: 'member' }));
    expect(await store.join(DESIGN)).toBe('#7');
    expect(store.conversation('#7')).toMatchObject({ standing: 'member', myRole: 'member' });
    expect(store.conversations().map((c) => c.key)).toEqual(['#7']);
  });

  it('opens a public room I am not in by id, readable, and resolves a direct one to its name', async () => {
    await startConnected();
    api.details.set(DESIGN, design({ visibility: 'public', myRole: null }));
    store.open('#7');
    await settle();
    expect(store.conversation('#7')).toMatchObject({ standing: 'outsider', detailsLoaded: true });
    expect(api.pageRequests).toEqual([{ peer: DESIGN, before: undefined }]);

    const dave = directSummary('dave', { id: 12 });
    api.details.set(12, dave);
    store.open('#12');
    await settle();
    expect(store.resolve('#12')).toBe('dave');
    expect(store.conversation('#12')).toBeUndefined();
  });

  it('says so when a conversation opened by id does not exist or is not mine to see', async () => {
    await startConnected();
    store.open('#99');
    await settle();
    expect(store.conversation('#99')!.notFound).toBe(true);
    expect(store.conversations()).toEqual([]);
  });
});

describe('conversation helpers', () => {
  const base = {
    key: '#1',
    kind: 'group',
    name: null,
    members: [
      { username: 'alice', role: 'member', readUpTo: 0 },
      { username: 'bob', role: 'member', readUpTo: 0 },
      { username: 'carol', role: 'member', readUpTo: 0 },
    ],
    memberCount: 3,
    myRole: 'member',
    standing: 'member',
    detailsAt: 0,
    detailsLoaded: true,
  } as unknown as Conversation;

  it('titles a group by its name, else by the others in it', () => {
    expect(conversationTitle(base, 'alice')).toBe('bob and carol');
    expect(conversationTitle({ ...base, name: 'lunch' }, 'alice')).toBe('lunch');
    const big = {
      ...base,
      members: ['alice', 'bob', 'carol', 'dave', 'erin'].map((username) => ({
        username,
        role: 'member' as const,
        readUpTo: 0,
      })),
      memberCount: 9,
    };
    expect(conversationTitle(big, 'alice')).toBe('bob, carol, dave and 5 more');
  });

  it('counts a member added twice (locally, then by its event) once where the members are known', () => {
    const dave = {
      type: 'member_added' as const,
      by: 'bob',
      members: [{ username: 'dave', role: 'member' as const }],
    };
    const once = applyChange(base, dave, 'alice', 5);
    expect(once.memberCount).toBe(4);
    expect(applyChange(once, dave, 'alice', 6).memberCount).toBe(4);
    expect(once.detailsAt).toBe(5);
  });
});
