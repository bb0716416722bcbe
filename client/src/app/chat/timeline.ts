//! Turns a conversation's messages into view rows: day separators, sender groups, read marker.
import type { ChatMessage } from '../core/chat-store';
import { clockTime, dayKey, dayLabel, fullDateTime } from '../core/time';

/** Messages from one sender closer together than this share a group. */
const GROUP_GAP_MS = 5 * 60_000;

export type TimelineRow =
  | { kind: 'day'; key: string; label: string }
  | { kind: 'unread'; key: string }
  | {
      kind: 'message';
      key: string;
      message: ChatMessage;
      mine: boolean;
      /** First and last of a run from one sender: drive bubble shape, name and time. */
      first: boolean;
      last: boolean;
      time: string;
      fullTime: string;
    };

export function buildTimeline(
  messages: readonly ChatMessage[],
  me: string,
  options: { unreadFromId?: number | null; now?: Date } = {},
): TimelineRow[] {
  const rows: TimelineRow[] = [];
  const now = options.now ?? new Date();
  let previous: ChatMessage | null = null;
  let previousRow: Extract<TimelineRow, { kind: 'message' }> | null = null;
  let markerPlaced = false;

  for (const message of messages) {
    const day = dayKey(message.createdAt);
    const newDay = !previous || dayKey(previous.createdAt) !== day;
    if (newDay)
      rows.push({ kind: 'day', key: `day:${day}`, label: dayLabel(message.createdAt, now) });

    const marker =
      !markerPlaced &&
      options.unreadFromId != null &&
      message.id !== null &&
      message.id >= options.unreadFromId &&
      message.from !== me;
    if (marker) {
      rows.push({ kind: 'unread', key: 'unread-marker' });
      markerPlaced = true;
    }

    const sameGroup =
      !!previous &&
      !newDay &&
      !marker &&
      previous.from === message.from &&
      Date.parse(message.createdAt) - Date.parse(previous.createdAt) < GROUP_GAP_MS;
    if (!sameGroup && previousRow) previousRow.last = true;

    const row: Extract<TimelineRow, { kind: 'message' }> = {
      kind: 'message',
      key: message.key,
      message,
      mine: message.from === me,
      first: !sameGroup,
      last: false,
      time: clockTime(message.createdAt),
      fullTime: fullDateTime(message.createdAt),
    };
    rows.push(row);
    previous = message;
    previousRow = row;
  }
  if (previousRow) previousRow.last = true;
  return rows;
}
