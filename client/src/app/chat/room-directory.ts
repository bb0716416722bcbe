//! "Browse rooms": the public rooms, searchable by name or topic, each with its member count and
//! a way in (open it if I am in it, join it if not).
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  inject,
  output,
  signal,
} from '@angular/core';
import { ApiError, type RoomDto } from '../api/api';
import { ChatStore } from '../core/chat-store';
import { Nav, NavLink, conversationPath } from '../core/nav';
import { Autofocus } from '../ui/autofocus';
import { Avatar } from '../ui/avatar';

const SEARCH_DEBOUNCE_MS = 200;

@Component({
  selector: 'app-room-directory',
  imports: [Avatar, NavLink, Autofocus],
  templateUrl: './room-directory.html',
  styleUrl: './room-directory.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class RoomDirectory {
  private readonly store = inject(ChatStore);
  private readonly nav = inject(Nav);
  /** Asks for the new-conversation dialog on its room form. */
  readonly create = output<void>();

  protected readonly query = signal('');
  protected readonly rooms = signal<RoomDto[] | null>(null);
  protected readonly error = signal<string | null>(null);
  protected readonly joining = signal<number | null>(null);
  private searchTimer: ReturnType<typeof setTimeout> | null = null;
  private seq = 0;

  constructor() {
    void this.load('');
    inject(DestroyRef).onDestroy(() => {
      if (this.searchTimer) clearTimeout(this.searchTimer);
    });
  }

  protected path(room: RoomDto): string {
    return conversationPath(`#${room.id}`);
  }

  protected membersLabel(n: number): string {
    return n === 1 ? '1 member' : `${n} members`;
  }

  protected onQuery(value: string): void {
    this.query.set(value);
    if (this.searchTimer) clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => void this.load(value.trim()), SEARCH_DEBOUNCE_MS);
  }

  protected async join(room: RoomDto): Promise<void> {
    this.joining.set(room.id);
    this.error.set(null);
    try {
      const key = await this.store.join(room.id);
      this.nav.go(conversationPath(key));
    } catch (e) {
      this.error.set(e instanceof ApiError ? e.message : `Could not join ${room.name}.`);
    } finally {
      this.joining.set(null);
    }
  }

  private async load(q: string): Promise<void> {
    const seq = ++this.seq;
    try {
      const rooms = await this.store.searchRooms(q);
      if (seq !== this.seq) return;
      this.rooms.set(rooms);
      this.error.set(null);
    } catch (e) {
      if (seq === this.seq)
        this.error.set(e instanceof ApiError ? e.message : 'Could not load the rooms.');
    }
  }
}
