import { describeEvent, joinNames } from './events';

describe('describeEvent', () => {
  it('joins names the way a sentence does', () => {
    expect(joinNames([])).toBe('');
    expect(joinNames(['bob'])).toBe('bob');
    expect(joinNames(['bob', 'carol'])).toBe('bob and carol');
    expect(joinNames(['bob', 'carol', 'dave'])).toBe('bob, carol and dave');
  });

  it('says who created a room or started a group, leaving the starter out of the list', () => {
    const members = [
      { username: 'alice', role: 'owner' as const },
      { username: 'bob', role: 'member' as const },
    ];
    const room = {
      type: 'conversation_created' as const,
      by: 'alice',
      kind: 'room' as const,
      name: 'design',
      topic: null,
      visibility: 'public' as const,
      members,
    };
    expect(describeEvent(room, 'bob')).toBe('alice created the room design');
    expect(describeEvent(room, 'alice')).toBe('You created the room design');
    expect(describeEvent({ ...room, kind: 'group', name: null, visibility: null }, 'bob')).toBe(
      'alice started a group with you',
    );
  });

  it('tells joining from adding and leaving from removing, with "you" for the reader', () => {
    const bob = [{ username: 'bob', role: 'member' as const }];
    expect(describeEvent({ type: 'member_added', by: 'bob', members: bob }, 'alice')).toBe(
      'bob joined',
    );
    expect(describeEvent({ type: 'member_added', by: 'alice', members: bob }, 'bob')).toBe(
      'alice added you',
    );
    expect(
      describeEvent(
        {
          type: 'member_added',
          by: 'alice',
          members: [...bob, { username: 'carol', role: 'member' }],
        },
        'alice',
      ),
    ).toBe('You added bob and carol');
    expect(describeEvent({ type: 'member_removed', by: 'bob', username: 'bob' }, 'alice')).toBe(
      'bob left',
    );
    expect(describeEvent({ type: 'member_removed', by: 'alice', username: 'carol' }, 'carol')).toBe(
      'alice removed you',
    );
  });

  it('describes renames, topics, archiving and roles; an administrator when nobody is named; names stay lowercase', () => {
    expect(describeEvent({ type: 'conversation_updated', by: 'alice', name: 'Ops' }, null)).toBe(
      'alice renamed the conversation to “Ops”',
    );
    expect(
      describeEvent(
        { type: 'conversation_updated', by: 'alice', name: 'Ops', topic: 'pager' },
        null,
      ),
    ).toBe('alice renamed the conversation to “Ops” and set the topic to “pager”');
    expect(describeEvent({ type: 'conversation_updated', by: 'bob', topic: '' }, null)).toBe(
      'bob cleared the topic',
    );
    expect(describeEvent({ type: 'conversation_updated', by: null, archived: true }, null)).toBe(
      'An administrator archived the room',
    );
    expect(describeEvent({ type: 'conversation_updated', by: 'bob', archived: false }, null)).toBe(
      'bob unarchived the room',
    );
    expect(
      describeEvent({ type: 'role_changed', by: 'alice', username: 'bob', role: 'admin' }, 'bob'),
    ).toBe('alice made you an admin');
    expect(describeEvent({ type: 'conversation_removed', by: 'alice' }, null)).toBe(
      'alice deleted the room',
    );
  });
});
