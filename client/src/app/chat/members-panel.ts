//! A group's or room's details: name and topic (editable where my role allows), its members with
//! roles and presence, adding and removing people, roles, archiving, leaving and deleting.
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  afterNextRender,
  computed,
  inject,
  input,
  output,
  signal,
  viewChild,
} from '@angular/core';
import { ApiError, type UserSummary } from '../api/api';
import { ChatStore, type Member } from '../core/chat-store';
import { memberActions, permissions } from '../core/permissions';
import type { Role } from '../core/realtime';
import { Autofocus } from '../ui/autofocus';
import { Avatar } from '../ui/avatar';

const SEARCH_DEBOUNCE_MS = 200;
const ROLE_NAMES: Record<Role, string> = { owner: 'Owner', admin: 'Admin', member: 'Member' };

type Editing = 'name' | 'topic' | null;
/** An action that asks once more before it happens. */
type Confirming = { action: 'remove'; username: string } | { action: 'leave' | 'delete' } | null;

@Component({
  selector: 'app-members-panel',
  imports: [Avatar, Autofocus],
  templateUrl: './members-panel.html',
  styleUrl: './members-panel.css',
  host: {
    role: 'complementary',
    'aria-labelledby': 'details-title',
    'data-testid': 'members-panel',
    '(keydown.escape)': 'onEscape($event)',
  },
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class MembersPanel {
  protected readonly store = inject(ChatStore);
  readonly key = input.required<string>();
  readonly closed = output<void>();
  /** I left it or deleted it. */
  readonly gone = output<void>();

  protected readonly conversation = computed(() => this.store.conversation(this.key()));
  protected readonly can = computed(() => {
    const c = this.conversation();
    return c ? permissions(c) : null;
  });
  protected readonly me = computed(() => this.store.me() ?? '');
  protected readonly members = computed(() => {
    const c = this.conversation();
    const me = this.me();
    return (c?.members ?? []).map((m) => ({
      ...m,
      online: m.username === me || this.store.isOnline(m.username),
      actions: c ? memberActions(c, me, m) : { remove: false, roles: [] },
    }));
  });
  protected readonly hidden = computed(() => {
    const c = this.conversation();
    return c ? Math.max(0, c.memberCount - c.members.length) : 0;
  });

  protected readonly editing = signal<Editing>(null);
  protected readonly draft = signal('');
  protected readonly confirming = signal<Confirming>(null);
  protected readonly managing = signal<string | null>(null);
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  protected readonly adding = signal(false);
  protected readonly query = signal('');
  protected readonly results = signal<UserSummary[]>([]);
  private searchTimer: ReturnType<typeof setTimeout> | null = null;
  private searchSeq = 0;

  private readonly closeButton = viewChild.required<ElementRef<HTMLButtonElement>>('close');

  constructor() {
    afterNextRender(() => this.closeButton().nativeElement.focus());
    inject(DestroyRef).onDestroy(() => {
      if (this.searchTimer) clearTimeout(this.searchTimer);
    });
  }

  protected roleName(role: Role): string {
    return ROLE_NAMES[role];
  }

  protected onEscape(event: Event): void {
    // Esc closes the innermost thing first: an edit, a confirmation, the add box, then the panel.
    event.preventDefault();
    if (this.editing()) this.editing.set(null);
    else if (this.confirming()) this.confirming.set(null);
    else if (this.adding()) this.stopAdding();
    else this.closed.emit();
  }

  protected startEditing(what: 'name' | 'topic'): void {
    const c = this.conversation();
    this.draft.set((what === 'name' ? c?.name : c?.topic) ?? '');
    this.editing.set(what);
    this.error.set(null);
  }

  protected async saveEdit(event: Event): Promise<void> {
    event.preventDefault();
    const what = this.editing();
    if (!what) return;
    const value = this.draft().trim();
    if (what === 'name' && !value) {
      this.error.set('A name cannot be empty.');
      return;
    }
    const done = await this.act(() =>
      this.store.updateConversation(
        this.key(),
        what === 'name' ? { name: value } : { topic: value },
      ),
    );
    if (done) this.editing.set(null);
  }

  protected setArchived(archived: boolean): void {
    void this.act(() => this.store.updateConversation(this.key(), { archived }));
  }

  protected toggleManage(username: string): void {
    this.managing.update((current) => (current === username ? null : username));
    this.confirming.set(null);
  }

  protected setRole(member: Member, role: Role): void {
    void this.act(() => this.store.setRole(this.key(), member.username, role)).then((done) => {
      if (done) this.managing.set(null);
    });
  }

  protected async confirm(): Promise<void> {
    const what = this.confirming();
    if (!what) return;
    const key = this.key();
    if (what.action === 'remove') {
      const done = await this.act(() => this.store.removeMember(key, what.username));
      if (done) {
        this.confirming.set(null);
        this.managing.set(null);
      }
    } else {
      const done = await this.act(() =>
        what.action === 'leave' ? this.store.leave(key) : this.store.deleteRoom(key),
      );
      if (done) {
        this.confirming.set(null);
        this.gone.emit();
      }
    }
  }

  protected startAdding(): void {
    this.adding.set(true);
    this.error.set(null);
  }

  protected stopAdding(): void {
    this.adding.set(false);
    this.query.set('');
    this.results.set([]);
    this.searchSeq++;
  }

  protected onQuery(value: string): void {
    this.query.set(value);
    if (this.searchTimer) clearTimeout(this.searchTimer);
    const q = value.trim();
    const seq = ++this.searchSeq;
    if (!q) {
      this.results.set([]);
      return;
    }
    this.searchTimer = setTimeout(async () => {
      try {
        const users = await this.store.searchUsers(q);
        if (seq !== this.searchSeq) return;
        const inside = new Set(this.conversation()?.members.map((m) => m.username));
        this.results.set(users.filter((u) => !inside.has(u.username)));
      } catch (e) {
        if (seq === this.searchSeq)
          this.error.set(e instanceof ApiError ? e.message : 'Search failed.');
      }
    }, SEARCH_DEBOUNCE_MS);
  }

  protected add(username: string): void {
    void this.act(() => this.store.addMembers(this.key(), [username])).then((done) => {
      if (done) this.stopAdding();
    });
  }

  /** Runs a change; resolves to whether it worked (the reason shows otherwise). */
  private async act(action: () => Promise<unknown>): Promise<boolean> {
    this.busy.set(true);
    this.error.set(null);
    try {
      await action();
      return true;
    } catch (e) {
      this.error.set(e instanceof ApiError ? e.message : 'That did not work. Try again.');
      return false;
    } finally {
      this.busy.set(false);
    }
  }
}
