//! Test doubles for unit tests: an in-memory WebSocket and a scripted REST API.
import type { ChatSummary, Message, MessagePage, ReadMarkers, UserSummary } from '../app/api/api';
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
    conversation_id: 1,
    from,
    to,
    body,
    created_at: new Date(Date.UTC(2026, 10, 24, 10, 0, id)).toISOString(),
    client_id: `cid-${id}`,
    kind: 'text',
    ...extra,
  };
}

/** A REST API answering from plain data, recording what it was asked. */
export class FakeApi {
  chatsResult: ChatSummary[] = [];
  markersResult: ReadMarkers[] | Error = [];
  chatsCalls = 0;
  pages = new Map<string, MessagePage>();
  usersResult: UserSummary[] = [];
  sendImpl: (peer: string, body: string, clientId: string) => Promise<Message> = () =>
    Promise.reject(new Error('offline'));
  readonly sends: { peer: string; body: string; clientId: string }[] = [];
  readonly reads: { peer: string; upTo: number }[] = [];
  readonly pageRequests: { peer: string; before?: number }[] = [];

  chats = async () => {
    this.chatsCalls++;
    return this.chatsResult;
  };
  readMarkers = async () => {
    if (this.markersResult instanceof Error) throw this.markersResult;
    return this.markersResult;
  };
  users = async () => this.usersResult;
  me = async () => ({ username: 'alice' });
  messages = async (peer: string, page: { before?: number } = {}) => {
    this.pageRequests.push({ peer, before: page.before });
    return this.pages.get(`${peer}:${page.before ?? ''}`) ?? { messages: [], has_more: false };
  };
  send = (peer: string, body: string, clientId: string) => {
    this.sends.push({ peer, body, clientId });
    return this.sendImpl(peer, body, clientId);
  };
  markRead = async (peer: string, upTo: number) => {
    this.reads.push({ peer, upTo });
  };
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
