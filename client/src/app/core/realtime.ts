//! The `/ws` connection: typed frames, auth-first handshake, heartbeat and reconnect with backoff.
import { Injectable, InjectionToken, inject, signal } from '@angular/core';
import type { Message } from '../api/api';

export type Role = 'owner' | 'admin' | 'member';
export type ConversationKind = 'direct' | 'group' | 'room';
export type Visibility = 'public' | 'private';

export interface MemberRole {
  readonly username: string;
  readonly role: Role;
}

/**
 * A change of a conversation, as events carry it (live frames and history entries alike). `by` is
 * who made it; null means an administrator on the server's command line.
 */
export type ChangeEvent =
  | {
      type: 'conversation_created';
      by: string | null;
      kind: ConversationKind;
      name: string | null;
      topic: string | null;
      visibility: Visibility | null;
      members: MemberRole[];
    }
  | { type: 'member_added'; by: string | null; members: MemberRole[] }
  | { type: 'member_removed'; by: string | null; username: string }
  | {
      type: 'conversation_updated';
      by: string | null;
      name?: string;
      topic?: string;
      archived?: boolean;
    }
  | { type: 'role_changed'; by: string | null; username: string; role: Role }
  | { type: 'conversation_removed'; by: string | null };

export const EVENT_TYPES: readonly ChangeEvent['type'][] = [
  'conversation_created',
  'member_added',
  'member_removed',
  'conversation_updated',
  'role_changed',
  'conversation_removed',
];

/** An event frame: the change, with its stream id (the sync cursor counts it), conversation and time. */
export type EventFrame = ChangeEvent & { id: number; conversation_id: number; created_at: string };

/** Frames the server sends (see docs/protocol.md). */
export type ServerFrame =
  | { type: 'ready'; username: string; last_id: number }
  | { type: 'online_users'; users: string[] }
  | { type: 'presence'; username: string; online: boolean }
  | { type: 'ack'; client_id: string; message: Message }
  | { type: 'receive_message'; message: Message }
  | { type: 'typing'; conversation_id: number; from: string }
  /** `peer` has read the conversation up to `up_to` (a receipt; not sent for rooms). */
  | { type: 'read'; conversation_id: number; peer: string; up_to: number }
  /** I read the conversation up to `up_to` on another device; `peer` names a direct one. */
  | { type: 'read_marker'; conversation_id: number; peer: string | null; up_to: number }
  | { type: 'sync_done'; last_id: number }
  | { type: 'error'; code: string; message: string; client_id: string | null }
  | { type: 'pong' }
  | EventFrame;

/** Frames the client sends: a direct conversation is named by the peer, any other by its id. */
export type ClientFrame =
  | { type: 'auth'; token: string }
  | { type: 'send_message'; to: string; body: string; client_id: string }
  | { type: 'send_message'; conversation_id: number; body: string; client_id: string }
  | { type: 'typing'; to: string }
  | { type: 'typing'; conversation_id: number }
  | { type: 'read'; peer: string; up_to: number }
  | { type: 'read'; conversation_id: number; up_to: number }
  | { type: 'sync'; after: number }
  | { type: 'ping' };

export function isEventFrame(frame: ServerFrame): frame is EventFrame {
  return (EVENT_TYPES as readonly string[]).includes(frame.type);
}

/**
 * `connecting`: first attempt under way; `open`: authenticated; `reconnecting`: lost, retrying;
 * `offline`: the browser reports no network, waiting for it to return.
 */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'offline';

/** The socket close code the server uses for a missing or rejected auth frame. */
export const CLOSE_UNAUTHORIZED = 4401;
const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;
const MAX_BACKOFF_MS = 15_000;

export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export const SOCKET_FACTORY = new InjectionToken<(url: string) => SocketLike>('SOCKET_FACTORY', {
  providedIn: 'root',
  factory: () => (url: string) => new WebSocket(url),
});

/** Exponential backoff with ±20 % jitter: 0.5 s, 1 s, 2 s, 4 s, 8 s, then 15 s. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);
  return Math.round(base * (0.8 + random() * 0.4));
}

export function socketUrl(location: Pick<Location, 'protocol' | 'host'>): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

function isServerFrame(value: unknown): value is ServerFrame {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { type?: unknown }).type === 'string'
  );
}

const OPEN = 1;

@Injectable({ providedIn: 'root' })
export class Realtime {
  private readonly createSocket = inject(SOCKET_FACTORY);

  private readonly stateSignal = signal<ConnectionState>('idle');
  readonly state = this.stateSignal.asReadonly();
  /** When the next reconnect attempt happens (epoch ms), while reconnecting. */
  readonly retryAt = signal<number | null>(null);

  private socket: SocketLike | null = null;
  private token: string | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly frameHandlers = new Set<(frame: ServerFrame) => void>();
  private readonly rejectedHandlers = new Set<() => void>();

  private readonly onOnline = () => {
    if (this.token && this.stateSignal() !== 'open') this.reconnectNow();
  };
  private readonly onOffline = () => {
    if (!this.token) return;
    this.dropSocket();
    this.clearRetry();
    this.stateSignal.set('offline');
  };

  /** Subscribes to every frame from the server; returns the unsubscribe function. */
  onFrame(handler: (frame: ServerFrame) => void): () => void {
    this.frameHandlers.add(handler);
    return () => this.frameHandlers.delete(handler);
  }

  /** Called when the server closes the socket for a bad token. */
  onRejected(handler: () => void): () => void {
    this.rejectedHandlers.add(handler);
    return () => this.rejectedHandlers.delete(handler);
  }

  start(token: string): void {
    this.stop();
    this.token = token;
    this.attempt = 0;
    globalThis.addEventListener?.('online', this.onOnline);
    globalThis.addEventListener?.('offline', this.onOffline);
    this.stateSignal.set('connecting');
    this.connect();
  }

  stop(): void {
    this.token = null;
    globalThis.removeEventListener?.('online', this.onOnline);
    globalThis.removeEventListener?.('offline', this.onOffline);
    this.clearRetry();
    this.dropSocket(1000);
    this.stateSignal.set('idle');
  }

  /** Sends a frame if the socket is authenticated; returns whether it was sent. */
  send(frame: ClientFrame): boolean {
    if (this.stateSignal() !== 'open' || !this.socket || this.socket.readyState !== OPEN)
      return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  reconnectNow(): void {
    if (!this.token) return;
    this.clearRetry();
    this.dropSocket();
    this.attempt = 0;
    this.stateSignal.set(this.stateSignal() === 'connecting' ? 'connecting' : 'reconnecting');
    this.connect();
  }

  private connect(): void {
    const token = this.token;
    if (!token) return;
    const socket = this.createSocket(socketUrl(globalThis.location));
    this.socket = socket;
    socket.onopen = () =>
      socket.send(JSON.stringify({ type: 'auth', token } satisfies ClientFrame));
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      let frame: unknown;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (!isServerFrame(frame)) return;
      this.clearPongTimer();
      if (frame.type === 'ready') {
        this.attempt = 0;
        this.stateSignal.set('open');
        this.startHeartbeat();
      }
      for (const handler of [...this.frameHandlers]) handler(frame);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.stopHeartbeat();
      if (event.code === CLOSE_UNAUTHORIZED) {
        for (const handler of [...this.rejectedHandlers]) handler();
      }
      this.scheduleReconnect();
    };
    socket.onerror = () => {
      // A close event always follows; reconnecting is handled there.
    };
  }

  private scheduleReconnect(): void {
    if (!this.token) return;
    this.clearRetry();
    if (globalThis.navigator?.onLine === false) {
      this.stateSignal.set('offline');
      return;
    }
    const delay = backoffDelay(this.attempt++);
    this.stateSignal.set('reconnecting');
    this.retryAt.set(Date.now() + delay);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryAt.set(null);
      this.connect();
    }, delay);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.send({ type: 'ping' })) return;
      this.clearPongTimer();
      // No frame at all within the window: the connection is dead even if no close arrived.
      this.pongTimer = setTimeout(() => {
        this.dropSocket();
        this.scheduleReconnect();
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  private stopHeartbeat(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.clearPongTimer();
  }

  private clearPongTimer(): void {
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt.set(null);
  }

  /** Detaches and closes the current socket without triggering a reconnect. */
  private dropSocket(code = 1000): void {
    this.stopHeartbeat();
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close(code);
    } catch {
      // Closing a socket that never opened can throw in some browsers.
    }
  }
}
