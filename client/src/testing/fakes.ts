//! Test doubles for unit tests: an in-memory WebSocket and a scripted REST API.
import type {
  ConversationDto,
  Message,
  MessagePage,
  NewConversation,
  RoomDto,
  UserSummary,
} from '../app/api/api';
import { ApiError } from '../app/api/api';
import type { Role } from '../app/core/realtime';
import type { ClientFrame, ServerFrame, SocketLike } from '../app/core/realtime';

export class FakeSocket implements SocketLike {
  static created: FakeSocket[] = [];
  static latest(): FakeSocket {
    return FakeSocket.created[FakeSocket.created.length - 1];
  }

  readyState = 0;
  readonly sent: ClientFrame[] = [];
  closedWith: number | null = null;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.created.push(this);
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code = 1000): void {
    this.readyState = 3;
    this.closedWith = code;
  }

  /** Server side: accept the connection. */
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }

  receive(frame: ServerFrame): void {
    this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent);
  }

  /** Server side: the connection goes away. */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }

  sentOfType<T extends ClientFrame['type']>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }
}

/** A stable id for the direct conversation between two people. */
export function pairId(a: string, b: string): number {
  let hash = 0;
  for (const ch of [a, b].sort().join('\n')) hash = (hash * 31 + ch.charCodeAt(0)) % 100_000;
  return 1000 + hash;
}

let nextId = 1;
export function message(
  from: string,
  to: string,
  body: string,
  extra: Partial<Message> = {},
): Message {
  const id = extra.id ?? nextId++;
  return {
    id,
    conversation_id: to ? pairId(from, to) : 1,
    from,
    to,
    body,
    created_at: new Date(Date.UTC(2026, 10, 24, 10, 0, id)).toISOString(),
    client_id: `cid-${id}`,
    kind: 'text',
    event: null,
    ...extra,
  };
}

/** A message in a group or room (no `to`). */
export function roomMessage(
  conversationId: number,
  from: string,
  body: string,
  extra: Partial<Message> = {},
): Message {
  return { ...message(from, '', body, extra), to: null, conversation_id: conversationId };
}

let nextConversation = 900_000;

/** A direct conversation with `peer` as alice's conversation list reports it. */
export function directSummary(
  peer: string,
  options: {
    id?: number;
    online?: boolean;
    unread?: number;
    last?: Message;
    readUpTo?: number;
    peerReadUpTo?: number;
  } = {},
): ConversationDto {
  const id = options.id ?? pairId('alice', peer);
  const last = options.last ? { ...options.last, conversation_id: id } : undefined;
  return {
    id,
    kind: 'direct',
    name: null,
    topic: null,
    visibility: null,
    archived: false,
    members: [
      { username: 'alice', role: 'member', online: true, read_up_to: options.readUpTo ?? 0 },
      {
        username: peer,
        role: 'member',
        online: options.online ?? false,
        read_up_to: options.peerReadUpTo ?? 0,
      },
    ],
    member_count: 2,
    my_role: 'member',
    unread: options.unread ?? 0,
    read_up_to: options.readUpTo ?? 0,
    last_message: last ?? null,
    last_activity_id: last?.id ?? 0,
    created_at: '2026-11-24T09:00:00.000Z',
  };
}

/** A group or room alice is in. */
export function roomSummary(
  id: number,
  options: {
    kind?: 'group' | 'room';
    name?: string | null;
    topic?: string;
    visibility?: 'public' | 'private';
    archived?: boolean;
    members?: { username: string; role?: Role; online?: boolean; read_up_to?: number }[];
    memberCount?: number;
    myRole?: Role | null;
    unread?: number;
    readUpTo?: number;
    last?: Message;
    lastActivity?: number;
  } = {},
): ConversationDto {
  const kind = options.kind ?? 'room';
  const members = (
    options.members ?? [{ username: 'alice', role: 'owner' }, { username: 'bob' }]
  ).map((m) => ({
    username: m.username,
    role: m.role ?? 'member',
    online: m.online ?? false,
    read_up_to: m.read_up_to ?? 0,
  }));
  const myRole =
    options.myRole === undefined
      ? (members.find((m) => m.username === 'alice')?.role ?? 'member')
      : options.myRole;
  return {
    id,
    kind,
    name: options.name === null ? null : (options.name ?? (kind === 'room' ? `room${id}` : null)),
    topic: options.topic ?? null,
    visibility: kind === 'room' ? (options.visibility ?? 'public') : null,
    archived: options.archived ?? false,
    members,
    member_count: options.memberCount ?? members.length,
    my_role: myRole ?? null,
    unread: options.unread ?? 0,
    read_up_to: options.readUpTo ?? 0,
    last_message: options.last ? { ...options.last, conversation_id: id } : null,
    last_activity_id: options.lastActivity ?? options.last?.id ?? id,
    created_at: '2026-11-24T09:00:00.000Z',
  };
}

/** A REST API answering from plain data, recording what it was asked. */
export class FakeApi {
  conversationsResult: ConversationDto[] = [];
  conversationsCalls = 0;
  /** What GET /api/conversations/{id} answers; missing ids are 404. */
  details = new Map<number, ConversationDto>();
  readonly detailRequests: number[] = [];
  pages = new Map<string, MessagePage>();
  usersResult: UserSummary[] = [];
  roomsResult: RoomDto[] = [];
  sendImpl: (target: string | number, body: string, clientId: string) => Promise<Message> = () =>
    Promise.reject(new Error('offline'));
  readonly sends: { peer: string | number; body: string; clientId: string }[] = [];
  readonly reads: { peer: string | number; upTo: number }[] = [];
  readonly pageRequests: { peer: string | number; before?: number }[] = [];
  readonly created: NewConversation[] = [];
  readonly calls: string[] = [];
  /** What a change (create, update, add, role, join) answers; by default the details' entry. */
  changeResult: ((id: number) => ConversationDto) | null = null;

  conversations = async () => {
    this.conversationsCalls++;
    return this.conversationsResult;
  };
  conversation = async (id: number) => {
    this.detailRequests.push(id);
    const found = this.details.get(id);
    if (!found) throw new ApiError(404, 'conversation_not_found', 'no such conversation');
    return found;
  };
  users = async () => this.usersResult;
  rooms = async () => this.roomsResult;
  me = async () => ({ username: 'alice' });
  messages = async (peer: string, page: { before?: number } = {}) => {
    this.pageRequests.push({ peer, before: page.before });
    return this.pages.get(`${peer}:${page.before ?? ''}`) ?? { messages: [], has_more: false };
  };
  conversationMessages = async (id: number, page: { before?: number } = {}) => {
    this.pageRequests.push({ peer: id, before: page.before });
    return this.pages.get(`#${id}:${page.before ?? ''}`) ?? { messages: [], has_more: false };
  };
  send = (peer: string, body: string, clientId: string) => {
    this.sends.push({ peer, body, clientId });
    return this.sendImpl(peer, body, clientId);
  };
  sendToConversation = (id: number, body: string, clientId: string) => {
    this.sends.push({ peer: id, body, clientId });
    return this.sendImpl(id, body, clientId);
  };
  markRead = async (peer: string, upTo: number) => {
    this.reads.push({ peer, upTo });
  };
  markConversationRead = async (id: number, upTo: number) => {
    this.reads.push({ peer: id, upTo });
  };
  createConversation = async (body: NewConversation) => {
    this.created.push(body);
    return this.answer(nextConversation++);
  };
  updateConversation = async (id: number, patch: object) => {
    this.calls.push(`update ${id} ${JSON.stringify(patch)}`);
    return this.answer(id);
  };
  addMembers = async (id: number, usernames: string[]) => {
    this.calls.push(`add ${id} ${usernames.join(',')}`);
    return this.answer(id);
  };
  removeMember = async (id: number, username: string) => {
    this.calls.push(`remove ${id} ${username}`);
  };
  setRole = async (id: number, username: string, role: Role) => {
    this.calls.push(`role ${id} ${username} ${role}`);
    return this.answer(id);
  };
  join = async (id: number) => {
    this.calls.push(`join ${id}`);
    return this.answer(id);
  };
  deleteConversation = async (id: number) => {
    this.calls.push(`delete ${id}`);
  };

  private answer(id: number): ConversationDto {
    const dto = this.changeResult?.(id) ?? this.details.get(id);
    if (!dto) throw new ApiError(404, 'conversation_not_found', 'no such conversation');
    return dto;
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
