import { memberActions, permissions, type RulesView } from './permissions';
import type { Role } from './realtime';

function room(myRole: Role | null, extra: Partial<RulesView> = {}): RulesView {
  return {
    kind: 'room',
    myRole,
    standing: myRole ? 'member' : 'outsider',
    archived: false,
    visibility: 'private',
    members: [
      { username: 'olga', role: 'owner' },
      { username: 'adam', role: 'admin' },
      { username: 'mia', role: 'member' },
    ],
    ...extra,
  };
}

/** The permissions that are true, by name. */
function allowed(view: RulesView): string[] {
  return Object.entries(permissions(view))
    .filter(([, yes]) => yes)
    .map(([name]) => name)
    .sort();
}

describe('permissions', () => {
  it('give room owners everything but leaving while they are the only owner', () => {
    expect(allowed(room('owner'))).toEqual([
      'addPeople',
      'archive',
      'deleteRoom',
      'post',
      'rename',
      'setTopic',
    ]);
    const twoOwners = room('owner', {
      members: [
        { username: 'olga', role: 'owner' },
        { username: 'otto', role: 'owner' },
      ],
    });
    expect(permissions(twoOwners).leave).toBe(true);
  });

  it('let admins rename, set the topic, add people and archive, but not delete', () => {
    expect(allowed(room('admin'))).toEqual([
      'addPeople',
      'archive',
      'leave',
      'post',
      'rename',
      'setTopic',
    ]);
  });

  it('let members read, post and leave, and add people to public rooms only', () => {
    expect(allowed(room('member'))).toEqual(['leave', 'post']);
    expect(allowed(room('member', { visibility: 'public' }))).toEqual([
      'addPeople',
      'leave',
      'post',
    ]);
  });

  it('make an archived room read-only, with unarchiving left to its admins and owners', () => {
    expect(allowed(room('member', { archived: true }))).toEqual(['leave']);
    expect(allowed(room('admin', { archived: true }))).toEqual(['archive', 'leave']);
    expect(permissions(room(null, { archived: true, visibility: 'public' })).join).toBe(false);
  });

  it('offer joining a public room to whoever is not in it, and nothing else', () => {
    expect(allowed(room(null, { visibility: 'public' }))).toEqual(['join']);
    expect(allowed(room(null, { visibility: 'public', standing: 'left' }))).toEqual(['join']);
    expect(allowed(room(null))).toEqual([]);
    expect(allowed(room(null, { visibility: 'public', standing: 'deleted' }))).toEqual([]);
  });

  it('let anyone in a group add people, rename it and leave; a direct conversation only posts', () => {
    const group: RulesView = { ...room('member'), kind: 'group', visibility: null };
    expect(allowed(group)).toEqual(['addPeople', 'leave', 'post', 'rename']);
    expect(allowed({ ...group, kind: 'direct' })).toEqual(['post']);
    expect(allowed({ ...group, standing: 'removed', myRole: null })).toEqual([]);
  });
});

describe('memberActions', () => {
  const olga = { username: 'olga', role: 'owner' as const };
  const adam = { username: 'adam', role: 'admin' as const };
  const mia = { username: 'mia', role: 'member' as const };

  it('let owners remove anyone and give any other role, but never strip the last owner', () => {
    expect(memberActions(room('owner'), 'olga', mia)).toEqual({
      remove: true,
      roles: ['owner', 'admin'],
    });
    expect(memberActions(room('owner'), 'olga', adam)).toEqual({
      remove: true,
      roles: ['owner', 'member'],
    });
    const twoOwners = room('owner', { members: [olga, { username: 'otto', role: 'owner' }] });
    expect(memberActions(twoOwners, 'olga', { username: 'otto', role: 'owner' })).toEqual({
      remove: true,
      roles: ['admin', 'member'],
    });
  });

  it('let admins remove members only, and change no roles', () => {
    expect(memberActions(room('admin'), 'adam', mia)).toEqual({ remove: true, roles: [] });
    expect(memberActions(room('admin'), 'adam', olga)).toEqual({ remove: false, roles: [] });
  });

  it('give members, groups and myself no member actions (leaving is separate)', () => {
    expect(memberActions(room('member'), 'mia', adam)).toEqual({ remove: false, roles: [] });
    expect(memberActions(room('owner'), 'olga', olga)).toEqual({ remove: false, roles: [] });
    const group: RulesView = { ...room('member'), kind: 'group' };
    expect(memberActions(group, 'mia', adam)).toEqual({ remove: false, roles: [] });
  });
});
