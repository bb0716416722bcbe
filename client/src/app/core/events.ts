//! Timeline sentences for conversation events ("alice added bob"), with "you" for the reader.
import type { ChangeEvent, Role } from './realtime';

/** "bob", "bob and carol", "bob, carol and dave". */
export function joinNames(names: readonly string[]): string {
  if (names.length <= 1) return names[0] ?? '';
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/** Starts the sentence with a capital, unless it starts with a username (those are lowercase). */
function capitalise(text: string, startsWithName: boolean): string {
  return startsWithName ? text : text.charAt(0).toUpperCase() + text.slice(1);
}

const ROLE_WITH_ARTICLE: Record<Role, string> = {
  owner: 'an owner',
  admin: 'an admin',
  member: 'a member',
};

/** One sentence for what happened; `me` reads as "you", a missing actor as an administrator. */
export function describeEvent(event: ChangeEvent, me: string | null): string {
  const name = (who: string) => (who === me ? 'you' : who);
  const by = event.by === null ? 'an administrator' : name(event.by);
  let subject = by;
  const others = (members: readonly { username: string }[]) =>
    joinNames(members.filter((m) => m.username !== event.by).map((m) => name(m.username)));
  let text: string;
  switch (event.type) {
    case 'conversation_created':
      text =
        event.kind === 'room'
          ? `${by} created the room ${event.name ?? ''}`.trimEnd()
          : `${by} started a group with ${others(event.members)}`;
      break;
    case 'member_added':
      text =
        event.members.length === 1 && event.members[0].username === event.by
          ? `${by} joined`
          : `${by} added ${joinNames(event.members.map((m) => name(m.username)))}`;
      break;
    case 'member_removed':
      if (event.username === event.by) subject = name(event.username);
      text =
        event.username === event.by ? `${subject} left` : `${by} removed ${name(event.username)}`;
      break;
    case 'conversation_updated': {
      const parts: string[] = [];
      if (event.name !== undefined) parts.push(`renamed the conversation to “${event.name}”`);
      if (event.topic !== undefined)
        parts.push(event.topic ? `set the topic to “${event.topic}”` : 'cleared the topic');
      if (event.archived === true) parts.push('archived the room');
      if (event.archived === false) parts.push('unarchived the room');
      text = `${by} ${parts.length > 0 ? joinNames(parts) : 'changed the conversation'}`;
      break;
    }
    case 'role_changed':
      text = `${by} made ${name(event.username)} ${ROLE_WITH_ARTICLE[event.role]}`;
      break;
    case 'conversation_removed':
      text = `${by} deleted the room`;
      break;
  }
  return capitalise(text, subject !== 'you' && subject !== 'an administrator');
}
