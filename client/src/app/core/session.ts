//! The signed-in session (token + username), kept in localStorage so it survives reloads.
import { Injectable, computed, signal } from '@angular/core';

export interface SessionData {
  readonly token: string;
  readonly username: string;
}

const STORAGE_KEY = 'chatd.session';

function readStored(storage: Storage | undefined): SessionData | null {
  try {
    const raw = storage?.getItem(STORAGE_KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<SessionData>;
    return typeof parsed.token === 'string' && typeof parsed.username === 'string'
      ? { token: parsed.token, username: parsed.username }
      : null;
  } catch {
    return null;
  }
}

function browserStorage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined;
  }
}

@Injectable({ providedIn: 'root' })
export class Session {
  private readonly storage = browserStorage();
  private readonly state = signal<SessionData | null>(readStored(this.storage));

  readonly current = this.state.asReadonly();
  readonly token = computed(() => this.state()?.token ?? null);
  readonly username = computed(() => this.state()?.username ?? null);
  /** Why the last session ended, shown once on the sign-in screen. */
  readonly endedReason = signal<string | null>(null);

  constructor() {
    // Another tab signing in or out changes this tab's session too.
    globalThis.addEventListener?.('storage', (event: StorageEvent) => {
      if (event.key === STORAGE_KEY) this.state.set(readStored(this.storage));
    });
  }

  start(data: SessionData): void {
    this.storage?.setItem(STORAGE_KEY, JSON.stringify(data));
    this.endedReason.set(null);
    this.state.set(data);
  }

  end(reason: string | null = null): void {
    this.storage?.removeItem(STORAGE_KEY);
    this.endedReason.set(reason);
    this.state.set(null);
  }
}
