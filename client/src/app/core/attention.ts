//! Getting the user's attention: unread count in the tab title, notifications while the tab is hidden.
import { Injectable, computed, effect, inject, signal } from '@angular/core';
import { Title } from '@angular/platform-browser';
import { ChatStore, type ChatMessage } from './chat-store';
import { Nav, conversationPath } from './nav';

export const APP_TITLE = 'chatd';

export function titleFor(unread: number): string {
  return unread > 0 ? `(${unread > 99 ? '99+' : unread}) ${APP_TITLE}` : APP_TITLE;
}

type Permission = NotificationPermission | 'unsupported';

function currentPermission(): Permission {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
}

@Injectable({ providedIn: 'root' })
export class Attention {
  private readonly store = inject(ChatStore);
  private readonly nav = inject(Nav);
  private readonly title = inject(Title);

  readonly permission = signal<Permission>(currentPermission());
  /** Offer the button only while the browser would still ask. */
  readonly canAsk = computed(() => this.permission() === 'default');

  constructor() {
    effect(() => this.title.setTitle(titleFor(this.store.totalUnread())));
    this.store.onIncoming((m, key) => this.notify(m, key));
  }

  /** Must be called from a user gesture: browsers ignore (or penalise) prompts on load. */
  async askPermission(): Promise<void> {
    if (typeof Notification === 'undefined') return;
    try {
      this.permission.set(await Notification.requestPermission());
    } catch {
      this.permission.set(currentPermission());
    }
  }

  private notify(message: ChatMessage, key: string): void {
    if (this.permission() !== 'granted' || document.visibilityState !== 'hidden') return;
    const text = message.body.length > 140 ? `${message.body.slice(0, 139)}…` : message.body;
    const c = this.store.conversation(key);
    // In a group or room the title names the conversation and the text who wrote.
    const group = c && c.kind !== 'direct';
    const title = group ? this.store.title(c) : message.from;
    const body = group ? `${message.from}: ${text}` : text;
    const notification = new Notification(title, { body, tag: `chatd:${key}` });
    notification.onclick = () => {
      globalThis.focus();
      this.nav.go(conversationPath(key));
      notification.close();
    };
  }
}
