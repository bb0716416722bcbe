//! Turns a conversation's entries into view rows: day separators, sender runs, event lines, the
//! read marker.
import type { ChatMessage } from '../core/chat-store';
import { describeEvent } from '../core/events';
import { clockTime, dayKey, dayLabel, fullDateTime } from '../core/time';

/** Messages from one sender closer together than this share a group. */
const GROUP_GAP_MS = 5 * 60_000;

export type TimelineRow =
  | { kind: 'day'; key: string; label: string }
  | { kind: 'unread'; key: string }
  | {
      kind: 'event';
      key: string;
      message: ChatMessage;
      text: string;
      time: string;
      fullTime: string;
    }
  | {
      kind: 'message';
      key: string;
      message: ChatMessage;
      mine: boolean;
      /** First and last of a run from one sender: drive bubble shape, name and time. */
      first: boolean;
      last: boolean;
      /** Name and avatar above the run, where more than two people talk. */
      showSender: boolean;
      time: string;
      fullTime: string;
    };

export function buildTimeline(
  messages: readonly ChatMessage[],
  me: string,
  options: { unreadFromId?: number | null; now?: Date; showSenders?: boolean } = {},
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

    if (message.kind === 'event' && message.event) {
      // A line across the timeline: it ends the run before it.
      if (previousRow) previousRow.last = true;
      rows.push({
        kind: 'event',
        key: message.key,
        message,
        text: describeEvent(message.event, me),
        time: clockTime(message.createdAt),
        fullTime: fullDateTime(message.createdAt),
      });
      previous = message;
      previousRow = null;
      continue;
    }

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
      !!previousRow &&
      !newDay &&
      !marker &&
      previous.from === message.from &&
      Date.parse(message.createdAt) - Date.parse(previous.createdAt) < GROUP_GAP_MS;
    if (!sameGroup && previousRow) previousRow.last = true;

    const mine = message.from === me;
    const row: Extract<TimelineRow, { kind: 'message' }> = {
      kind: 'message',
      key: message.key,
      message,
      mine,
      first: !sameGroup,
      last: false,
      showSender: !!options.showSenders && !sameGroup && !mine,
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
