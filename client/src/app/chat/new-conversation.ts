//! "New conversation": pick people (one opens a direct conversation, several start a group), or
//! create a room with a name, a topic and who may find it.
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  computed,
  inject,
  input,
  linkedSignal,
  output,
  signal,
  viewChild,
} from '@angular/core';
import { ApiError, type UserSummary } from '../api/api';
import { ChatStore } from '../core/chat-store';
import type { Visibility } from '../core/realtime';
import { Autofocus } from '../ui/autofocus';
import { Avatar } from '../ui/avatar';
import { keepTabInside } from '../ui/focus';

const SEARCH_DEBOUNCE_MS = 200;
/** A group holds 3–50 people, me included. */
const GROUP_MAX_OTHERS = 49;

@Component({
  selector: 'app-new-conversation',
  imports: [Avatar, Autofocus],
  templateUrl: './new-conversation.html',
  styleUrl: './new-conversation.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class NewConversation {
  private readonly store = inject(ChatStore);
  /** Which form it opens on. */
  readonly start = input<'people' | 'room'>('people');
  /** The key of what was created or picked, or null when closed without. */
  readonly done = output<string | null>();

  protected readonly mode = linkedSignal(() => this.start());
  protected readonly query = signal('');
  protected readonly results = signal<UserSummary[]>([]);
  protected readonly searching = signal(false);
  protected readonly picked = signal<string[]>([]);
  protected readonly groupName = signal('');
  protected readonly roomName = signal('');
  protected readonly topic = signal('');
  protected readonly visibility = signal<Visibility>('public');
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  protected readonly tooMany = computed(() => this.picked().length > GROUP_MAX_OTHERS);
  protected readonly submitLabel = computed(() => {
    const picked = this.picked();
    if (this.mode() === 'room') return 'Create room';
    if (picked.length === 1) return `Message ${picked[0]}`;
    return picked.length > 1 ? `Start group of ${picked.length + 1}` : 'Pick someone';
  });
  protected readonly canSubmit = computed(() =>
    this.mode() === 'room'
      ? this.roomName().trim().length > 0
      : this.picked().length > 0 && !this.tooMany(),
  );

  private readonly dialog = viewChild.required<ElementRef<HTMLElement>>('dialog');
  private searchTimer: ReturnType<typeof setTimeout> | null = null;
  private searchSeq = 0;

  constructor() {
    inject(DestroyRef).onDestroy(() => {
      if (this.searchTimer) clearTimeout(this.searchTimer);
    });
  }

  protected onKey(event: KeyboardEvent): void {
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      this.done.emit(null);
      return;
    }
    keepTabInside(event, this.dialog().nativeElement);
  }

  protected setMode(mode: 'people' | 'room'): void {
    this.mode.set(mode);
    this.error.set(null);
  }

  protected onQuery(value: string): void {
    this.query.set(value);
    if (this.searchTimer) clearTimeout(this.searchTimer);
    const q = value.trim();
    const seq = ++this.searchSeq;
    if (!q) {
      this.results.set([]);
      this.searching.set(false);
      return;
    }
    this.searching.set(true);
    this.searchTimer = setTimeout(async () => {
      try {
        const users = await this.store.searchUsers(q);
        if (seq === this.searchSeq) this.results.set(users);
      } catch (e) {
        if (seq === this.searchSeq)
          this.error.set(e instanceof ApiError ? e.message : 'Search failed.');
      } finally {
        if (seq === this.searchSeq) this.searching.set(false);
      }
    }, SEARCH_DEBOUNCE_MS);
  }

  protected isPicked(username: string): boolean {
    return this.picked().includes(username);
  }

  protected toggle(username: string): void {
    this.picked.update((list) =>
      list.includes(username) ? list.filter((n) => n !== username) : [...list, username],
    );
  }

  protected onQueryKey(event: KeyboardEvent): void {
    // Enter picks the best match, so names can be typed one after another.
    if (event.key !== 'Enter') return;
    event.preventDefault();
    const first = this.results().find((u) => !this.isPicked(u.username));
    if (first) {
      this.toggle(first.username);
      this.onQuery('');
    }
  }

  protected async submit(event: Event): Promise<void> {
    event.preventDefault();
    if (!this.canSubmit() || this.busy()) return;
    const picked = this.picked();
    if (this.mode() === 'people' && picked.length === 1) {
      this.done.emit(picked[0]);
      return;
    }
    this.busy.set(true);
    this.error.set(null);
    try {
      const key =
        this.mode() === 'room'
          ? await this.store.createRoom({
              name: this.roomName(),
              topic: this.topic(),
              visibility: this.visibility(),
            })
          : await this.store.createGroup(picked, this.groupName());
      this.done.emit(key);
    } catch (e) {
      this.error.set(e instanceof ApiError ? e.message : 'That did not work. Try again.');
    } finally {
      this.busy.set(false);
    }
  }
}
