import { TestBed } from '@angular/core/testing';
import { FakeSocket } from '../../testing/fakes';
import {
  CLOSE_UNAUTHORIZED,
  Realtime,
  SOCKET_FACTORY,
  backoffDelay,
  socketUrl,
  type ServerFrame,
} from './realtime';

describe('Realtime', () => {
  let realtime: Realtime;

  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.created = [];
    TestBed.configureTestingModule({
      providers: [{ provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) }],
    });
    realtime = TestBed.inject(Realtime);
  });

  afterEach(() => {
    realtime.stop();
    vi.useRealTimers();
  });

  function connectAndAuth(): FakeSocket {
    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 7 });
    return socket;
  }

  it('derives the socket URL from the page, never putting the token in it', () => {
    expect(socketUrl({ protocol: 'http:', host: 'chat.example:3000' })).toBe(
      'ws://chat.example:3000/ws',
    );
    expect(socketUrl({ protocol: 'https:', host: 'chat.example' })).toBe('wss://chat.example/ws');
    realtime.start('secret-token');
    expect(FakeSocket.latest().url).not.toContain('secret-token');
  });

  it('sends the auth frame first and is open only after ready', () => {
    realtime.start('tok');
    const socket = FakeSocket.latest();
    expect(realtime.state()).toBe('connecting');
    expect(realtime.send({ type: 'ping' })).toBe(false);
    socket.open();
    expect(socket.sent).toEqual([{ type: 'auth', token: 'tok' }]);
    expect(realtime.state()).toBe('connecting');
    socket.receive({ type: 'ready', username: 'alice', last_id: 7 });
    expect(realtime.state()).toBe('open');
    expect(realtime.send({ type: 'typing', to: 'bob' })).toBe(true);
    expect(socket.sent.at(-1)).toEqual({ type: 'typing', to: 'bob' });
  });

  it('hands every frame to subscribers and ignores garbage', () => {
    const frames: ServerFrame[] = [];
    realtime.onFrame((f) => frames.push(f));
    realtime.start('tok');
    const socket = connectAndAuth();
    socket.onmessage?.({ data: 'not json' } as MessageEvent);
    socket.onmessage?.({ data: '42' } as MessageEvent);
    socket.receive({ type: 'presence', username: 'bob', online: true });
    expect(frames.map((f) => f.type)).toEqual(['ready', 'presence']);
  });

  it('reconnects with growing, capped backoff and resets after a good connection', () => {
    const never = () => 0.5;
    expect([0, 1, 2, 3, 4, 5, 10].map((n) => backoffDelay(n, never))).toEqual([
      500, 1000, 2000, 4000, 8000, 15000, 15000,
    ]);
    expect(backoffDelay(0, () => 0)).toBe(400);
    expect(backoffDelay(0, () => 1)).toBe(600);

    realtime.start('tok');
    connectAndAuth().drop();
    expect(realtime.state()).toBe('reconnecting');
    expect(realtime.retryAt()).not.toBeNull();
    expect(FakeSocket.created).toHaveLength(1);
    vi.advanceTimersByTime(600);
    expect(FakeSocket.created).toHaveLength(2);
    FakeSocket.latest().drop();
    vi.advanceTimersByTime(700);
    expect(FakeSocket.created).toHaveLength(2);
    vi.advanceTimersByTime(600);
    expect(FakeSocket.created).toHaveLength(3);
    connectAndAuth();
    expect(realtime.state()).toBe('open');
    FakeSocket.latest().drop();
    vi.advanceTimersByTime(600);
    expect(FakeSocket.created).toHaveLength(4);
  });

  it('reports a rejected token and stops cleanly', () => {
    const rejected = vi.fn();
    realtime.onRejected(rejected);
    realtime.start('bad');
    const socket = FakeSocket.latest();
    socket.open();
    socket.drop(CLOSE_UNAUTHORIZED);
    expect(rejected).toHaveBeenCalledTimes(1);
    realtime.stop();
    expect(realtime.state()).toBe('idle');
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.created).toHaveLength(1);
  });

  it('treats a silent connection as dead after a missed pong', () => {
    realtime.start('tok');
    const socket = connectAndAuth();
    vi.advanceTimersByTime(25_000);
    expect(socket.sentOfType('ping')).toHaveLength(1);
    vi.advanceTimersByTime(10_000);
    expect(socket.closedWith).toBe(1000);
    expect(realtime.state()).toBe('reconnecting');
  });

  it('waits for the network when the browser goes offline, and retries at once when it returns', () => {
    realtime.start('tok');
    const socket = connectAndAuth();
    globalThis.dispatchEvent(new Event('offline'));
    expect(realtime.state()).toBe('offline');
    expect(socket.closedWith).toBe(1000);
    globalThis.dispatchEvent(new Event('online'));
    expect(FakeSocket.created).toHaveLength(2);
    expect(realtime.state()).toBe('reconnecting');
  });
});
