//! Who may do what in a conversation: the server's rules, asked before offering a control. The
//! server still decides; these only keep the app from offering what it would refuse.
import type { ConversationKind, Role, Visibility } from './realtime';

export interface RulesView {
  readonly kind: ConversationKind;
  readonly myRole: Role | null;
  readonly standing: 'member' | 'outsider' | 'left' | 'removed' | 'deleted';
  readonly archived: boolean;
  readonly visibility: Visibility | null;
  readonly members: readonly { readonly username: string; readonly role: Role }[];
}

export interface Permissions {
  readonly post: boolean;
  readonly rename: boolean;
  readonly setTopic: boolean;
  /** Archive, or unarchive an archived room. */
  readonly archive: boolean;
  readonly addPeople: boolean;
  readonly leave: boolean;
  readonly deleteRoom: boolean;
  readonly join: boolean;
}

const RANK: Record<Role, number> = { member: 0, admin: 1, owner: 2 };

function atLeast(role: Role | null, wanted: Role): boolean {
  return role !== null && RANK[role] >= RANK[wanted];
}

/** Owners listed (the server lists owners first, so a partial list still holds them). */
export function ownerCount(c: RulesView): number {
  return c.members.filter((m) => m.role === 'owner').length;
}

export function permissions(c: RulesView): Permissions {
  const member = c.standing === 'member' && c.myRole !== null;
  const room = c.kind === 'room';
  const manager = member && room && atLeast(c.myRole, 'admin');
  const lastOwner = c.myRole === 'owner' && ownerCount(c) <= 1;
  return {
    post: member && !c.archived,
    rename: c.kind === 'group' ? member : manager && !c.archived,
    setTopic: manager && !c.archived,
    archive: manager,
    addPeople:
      c.kind === 'group'
        ? member
        : room && member && !c.archived && (manager || c.visibility === 'public'),
    leave: c.kind === 'group' ? member : room && member && !lastOwner,
    deleteRoom: room && member && c.myRole === 'owner',
    join:
      room &&
      !member &&
      c.visibility === 'public' &&
      !c.archived &&
      c.standing !== 'deleted' &&
      c.standing !== 'removed',
  };
}

export interface MemberActions {
  readonly remove: boolean;
  /** The roles I may give them (their current one left out). */
  readonly roles: readonly Role[];
}

/** What I may do to another member of a room; nothing in groups (there one can only leave). */
export function memberActions(
  c: RulesView,
  me: string,
  target: { username: string; role: Role },
): MemberActions {
  const none: MemberActions = { remove: false, roles: [] };
  if (c.kind !== 'room' || c.standing !== 'member' || target.username === me) return none;
  const lastOwner = target.role === 'owner' && ownerCount(c) <= 1;
  const remove =
    !lastOwner && (c.myRole === 'owner' || (c.myRole === 'admin' && target.role === 'member'));
  const roles =
    c.myRole === 'owner' && !lastOwner
      ? (['owner', 'admin', 'member'] as const).filter((r) => r !== target.role)
      : [];
  return { remove, roles };
}
