import type { ChatMessage } from '../core/chat-store';
import { buildTimeline } from './timeline';

function msg(id: number, from: string, at: string): ChatMessage {
  return {
    key: `m:${id}`,
    id,
    conversationId: 1,
    kind: 'text',
    from,
    to: from === 'me' ? 'bob' : 'me',
    body: `#${id}`,
    createdAt: at,
    clientId: null,
    state: 'sent',
  };
}

describe('buildTimeline', () => {
  const now = new Date(2026, 10, 24, 18, 0);

  it('groups consecutive messages from one sender and splits on sender, gap and day', () => {
    const rows = buildTimeline(
      [
        msg(1, 'bob', new Date(2026, 10, 23, 9, 0).toISOString()),
        msg(2, 'me', new Date(2026, 10, 24, 9, 0).toISOString()),
        msg(3, 'me', new Date(2026, 10, 24, 9, 1).toISOString()),
        msg(4, 'me', new Date(2026, 10, 24, 9, 30).toISOString()),
        msg(5, 'bob', new Date(2026, 10, 24, 9, 31).toISOString()),
      ],
      'me',
      { now },
    );
    expect(
      rows.map((r) =>
        r.kind === 'message'
          ? `${r.key}${r.first ? '<' : ''}${r.last ? '>' : ''}`
          : r.kind === 'day'
            ? r.label
            : r.kind,
      ),
    ).toEqual(['Yesterday', 'm:1<>', 'Today', 'm:2<', 'm:3>', 'm:4<>', 'm:5<>']);
    const mine = rows.filter((r) => r.kind === 'message' && r.mine).length;
    expect(mine).toBe(3);
  });

  it('puts the read marker before the first unread message from the peer', () => {
    const at = new Date(2026, 10, 24, 9, 0).toISOString();
    const rows = buildTimeline(
      [msg(1, 'bob', at), msg(2, 'me', at), msg(3, 'bob', at), msg(4, 'bob', at)],
      'me',
      {
        unreadFromId: 3,
        now,
      },
    );
    const keys = rows.map((r) => r.key);
    expect(keys.indexOf('unread-marker')).toBe(keys.indexOf('m:3') - 1);
    const third = rows.find((r) => r.key === 'm:3');
    expect(third?.kind === 'message' && third.first).toBe(true);
  });

  it('puts events on lines of their own that end a run, and names the sender where many talk', () => {
    const at = (minute: number) => new Date(2026, 10, 24, 9, minute).toISOString();
    const joined: ChatMessage = {
      ...msg(3, 'carol', at(2)),
      kind: 'event',
      event: {
        type: 'member_added',
        by: 'carol',
        members: [{ username: 'carol', role: 'member' }],
      },
    };
    const rows = buildTimeline(
      [
        msg(1, 'bob', at(0)),
        msg(2, 'bob', at(1)),
        joined,
        msg(4, 'bob', at(3)),
        msg(5, 'me', at(4)),
      ],
      'me',
      { now, showSenders: true },
    );
    expect(
      rows.map((r) =>
        r.kind === 'message'
          ? `${r.key}${r.showSender ? '@' : ''}${r.first ? '<' : ''}${r.last ? '>' : ''}`
          : r.kind === 'event'
            ? r.text
            : r.kind,
      ),
    ).toEqual(['day', 'm:1@<', 'm:2>', 'carol joined', 'm:4@<>', 'm:5<>']);
    // A direct conversation has two people: no names over the bubbles.
    const direct = buildTimeline([msg(1, 'bob', at(0))], 'me', { now });
    expect(direct.some((r) => r.kind === 'message' && r.showSender)).toBe(false);
  });

  it('returns nothing for an empty conversation', () => {
    expect(buildTimeline([], 'me')).toEqual([]);
  });
});
