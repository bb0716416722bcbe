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

  it('returns nothing for an empty conversation', () => {
    expect(buildTimeline([], 'me')).toEqual([]);
  });
});
