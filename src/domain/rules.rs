//! Who may do what in a conversation, in one place. Pure: the writer asks these with the state it
//! read inside its transaction, so a check and the change it allows cannot be split by another.
use super::{Kind, Role, UserId, Visibility};
use crate::{
    error::{Error, Result},
    store::conversations::ConversationState,
};

/// Most people in a group conversation (the person who starts it included).
pub const GROUP_MAX_MEMBERS: usize = 50;
/// Fewest people in a group conversation: two are a direct conversation.
pub const GROUP_MIN_MEMBERS: usize = 3;
/// Most members of a room.
pub const ROOM_MAX_MEMBERS: usize = 10_000;

/// Who is asking.
#[derive(Clone, Debug)]
pub enum Actor {
    User { id: UserId, username: String, is_admin: bool },
    /// The command line, run by whoever administers the server.
    Administrator,
}

impl Actor {
    pub fn name(&self) -> Option<&str> {
        match self {
            Actor::User { username, .. } => Some(username),
            Actor::Administrator => None,
        }
    }

    pub fn user(&self) -> Option<UserId> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::Administrator => None,
        }
    }
}

/// How the actor stands towards a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Member(Role),
    /// A server admin (or the command line) who is not a member of a room: manages it as an owner.
    Manager,
    /// Anyone else looking at a public room.
    Outsider,
}

/// The actor's standing, or `conversation_not_found` when they may not even know it exists: a
/// private room, a group or a direct conversation they are not in, or one that was removed.
pub fn standing(actor: &Actor, state: &ConversationState) -> Result<Standing> {
    if state.deleted {
        return Err(Error::ConversationNotFound);
    }
    let manages = match actor {
        Actor::User { is_admin, .. } => *is_admin,
        Actor::Administrator => true,
    };
    if let Some(member) = actor.user().and_then(|id| state.member(id)) {
        // A server admin who is also a member still manages the room as an owner.
        let role = if manages && state.kind == Kind::Room { Role::Owner } else { member.role };
        return Ok(Standing::Member(role));
    }
    match (state.kind, state.visibility) {
        (Kind::Room, _) if manages => Ok(Standing::Manager),
        (Kind::Room, Some(Visibility::Public)) => Ok(Standing::Outsider),
        _ => Err(Error::ConversationNotFound),
    }
}

/// The role that counts for managing a room: a manager acts as an owner.
fn power(standing: Standing) -> Option<Role> {
    match standing {
        Standing::Member(role) => Some(role),
        Standing::Manager => Some(Role::Owner),
        Standing::Outsider => None,
    }
}

pub fn may_post(standing: Standing, state: &ConversationState) -> Result<()> {
    match standing {
        Standing::Member(_) if state.archived => Err(Error::Archived),
        Standing::Member(_) => Ok(()),
        Standing::Manager | Standing::Outsider => Err(Error::Forbidden("join the room to write in it")),
    }
}

/// Renaming, setting the topic, archiving: what the fields of a PATCH ask for.
pub fn may_update(standing: Standing, state: &ConversationState, name: bool, topic: bool, archived: Option<bool>) -> Result<()> {
    match state.kind {
        Kind::Direct => return Err(Error::Forbidden("a direct conversation cannot be changed")),
        Kind::Group if topic || archived.is_some() => return Err(Error::Forbidden("a group has no topic and cannot be archived")),
        Kind::Group => return if matches!(standing, Standing::Member(_)) { Ok(()) } else { Err(Error::Forbidden("not a member")) },
        Kind::Room => {}
    }
    if power(standing) < Some(Role::Admin) {
        return Err(Error::Forbidden("only the room's owners and admins may change it"));
    }
    if state.archived && archived != Some(false) {
        return Err(Error::Archived);
    }
    if state.archived && (name || topic) {
        return Err(Error::Archived);
    }
    Ok(())
}

/// Adding people, with `role` for them.
pub fn may_add(standing: Standing, state: &ConversationState, role: Role, adding: usize) -> Result<()> {
    let after = state.members.len() + adding;
    match state.kind {
        Kind::Direct => return Err(Error::Forbidden("a direct conversation has two people; start a group instead")),
        Kind::Group => {
            if !matches!(standing, Standing::Member(_)) {
                return Err(Error::Forbidden("not a member"));
            }
            if role != Role::Member {
                return Err(Error::Forbidden("a group has no roles"));
            }
            return if after > GROUP_MAX_MEMBERS { Err(Error::TooManyMembers(GROUP_MAX_MEMBERS)) } else { Ok(()) };
        }
        Kind::Room => {}
    }
    if state.archived {
        return Err(Error::Archived);
    }
    let public = state.visibility == Some(Visibility::Public);
    let allowed = match power(standing) {
        Some(Role::Owner) => true,
        Some(Role::Admin) => role != Role::Owner,
        Some(Role::Member) => public && role == Role::Member,
        None => false,
    };
    if !allowed {
        return Err(Error::Forbidden(if role == Role::Member {
            "only the room's owners and admins may add people to a private room"
        } else {
            "only owners may give that role"
        }));
    }
    if after > ROOM_MAX_MEMBERS { Err(Error::TooManyMembers(ROOM_MAX_MEMBERS)) } else { Ok(()) }
}

/// Removing `target` (who is a member with `target_role`); `leaving` when the actor is the target.
pub fn may_remove(standing: Standing, state: &ConversationState, target_role: Role, leaving: bool) -> Result<()> {
    let last_owner = target_role == Role::Owner && state.owners() == 1;
    match state.kind {
        Kind::Direct => return Err(Error::Forbidden("you cannot leave a direct conversation")),
        Kind::Group if leaving => return Ok(()),
        Kind::Group => return Err(Error::Forbidden("in a group you can only leave")),
        Kind::Room => {}
    }
    if last_owner {
        return Err(Error::LastOwner);
    }
    if leaving {
        return Ok(());
    }
    let allowed = match power(standing) {
        Some(Role::Owner) => true,
        Some(Role::Admin) => target_role == Role::Member,
        _ => false,
    };
    if allowed { Ok(()) } else { Err(Error::Forbidden("you may not remove this member")) }
}

/// Giving `target` (a member with `current`) the role `new`.
pub fn may_set_role(standing: Standing, state: &ConversationState, current: Role, new: Role) -> Result<()> {
    if state.kind != Kind::Room {
        return Err(Error::Forbidden("only rooms have roles"));
    }
    if power(standing) != Some(Role::Owner) {
        return Err(Error::Forbidden("only the room's owners may change roles"));
    }
    if current == Role::Owner && new != Role::Owner && state.owners() == 1 {
        return Err(Error::LastOwner);
    }
    Ok(())
}

pub fn may_join(standing: Standing, state: &ConversationState) -> Result<()> {
    match standing {
        Standing::Member(_) => Ok(()),
        _ if state.kind != Kind::Room || state.visibility != Some(Visibility::Public) => {
            Err(Error::Forbidden("only public rooms can be joined; ask a member to add you"))
        }
        _ if state.archived => Err(Error::Archived),
        _ => Ok(()),
    }
}

pub fn may_delete(standing: Standing, state: &ConversationState) -> Result<()> {
    if state.kind != Kind::Room {
        return Err(Error::Forbidden("only rooms can be deleted; leave the conversation instead"));
    }
    if power(standing) == Some(Role::Owner) { Ok(()) } else { Err(Error::Forbidden("only the room's owners may delete it")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::ConversationId,
        store::conversations::StateMember,
    };

    fn room(visibility: Visibility, roles: &[Role]) -> ConversationState {
        ConversationState {
            id: ConversationId(1),
            kind: Kind::Room,
            name: Some("design".into()),
            topic: None,
            visibility: Some(visibility),
            archived: false,
            deleted: false,
            members: roles
                .iter()
                .enumerate()
                .map(|(i, role)| StateMember { id: UserId(i as i64 + 1), username: format!("u{i}"), role: *role })
                .collect(),
        }
    }

    fn user(id: i64, is_admin: bool) -> Actor {
        Actor::User { id: UserId(id), username: format!("u{id}"), is_admin }
    }

    #[test]
    fn private_rooms_are_invisible_to_outsiders_but_not_to_server_admins() {
        let private = room(Visibility::Private, &[Role::Owner]);
        assert!(matches!(standing(&user(9, false), &private), Err(Error::ConversationNotFound)));
        assert_eq!(standing(&user(9, true), &private).unwrap(), Standing::Manager);
        assert_eq!(standing(&Actor::Administrator, &private).unwrap(), Standing::Manager);
        let public = room(Visibility::Public, &[Role::Owner]);
        assert_eq!(standing(&user(9, false), &public).unwrap(), Standing::Outsider);
        let mut removed = public.clone();
        removed.deleted = true;
        assert!(matches!(standing(&user(1, false), &removed), Err(Error::ConversationNotFound)));
    }

    #[test]
    fn members_add_to_public_rooms_only_and_admins_never_make_owners() {
        let public = room(Visibility::Public, &[Role::Owner, Role::Admin, Role::Member]);
        let private = room(Visibility::Private, &[Role::Owner, Role::Admin, Role::Member]);
        let member = Standing::Member(Role::Member);
        let admin = Standing::Member(Role::Admin);
        assert!(may_add(member, &public, Role::Member, 1).is_ok());
        assert!(matches!(may_add(member, &private, Role::Member, 1), Err(Error::Forbidden(_))));
        assert!(may_add(admin, &private, Role::Admin, 1).is_ok());
        assert!(matches!(may_add(admin, &private, Role::Owner, 1), Err(Error::Forbidden(_))));
        assert!(matches!(may_add(Standing::Outsider, &public, Role::Member, 1), Err(Error::Forbidden(_))));
        assert!(matches!(may_add(admin, &public, Role::Member, ROOM_MAX_MEMBERS), Err(Error::TooManyMembers(_))));
    }

    #[test]
    fn the_last_owner_cannot_leave_or_step_down() {
        let room = room(Visibility::Private, &[Role::Owner, Role::Admin]);
        let owner = Standing::Member(Role::Owner);
        assert!(matches!(may_remove(owner, &room, Role::Owner, true), Err(Error::LastOwner)));
        assert!(matches!(may_set_role(owner, &room, Role::Owner, Role::Admin), Err(Error::LastOwner)));
        assert!(may_set_role(owner, &room, Role::Admin, Role::Owner).is_ok());
        assert!(matches!(may_remove(Standing::Member(Role::Admin), &room, Role::Owner, false), Err(Error::LastOwner)));
        let two_owners = self::room(Visibility::Private, &[Role::Owner, Role::Owner]);
        assert!(may_remove(owner, &two_owners, Role::Owner, true).is_ok());
        assert!(matches!(may_remove(Standing::Member(Role::Admin), &two_owners, Role::Owner, false), Err(Error::Forbidden(_))));
    }

    #[test]
    fn archived_rooms_can_only_be_unarchived_and_read() {
        let mut room = room(Visibility::Public, &[Role::Owner, Role::Member]);
        room.archived = true;
        assert!(matches!(may_post(Standing::Member(Role::Owner), &room), Err(Error::Archived)));
        assert!(matches!(may_update(Standing::Member(Role::Owner), &room, true, false, None), Err(Error::Archived)));
        assert!(may_update(Standing::Member(Role::Owner), &room, false, false, Some(false)).is_ok());
        assert!(matches!(may_join(Standing::Outsider, &room), Err(Error::Archived)));
    }

    #[test]
    fn groups_have_no_roles_and_anyone_in_them_may_add_or_rename() {
        let mut group = room(Visibility::Private, &[Role::Member, Role::Member, Role::Member]);
        group.kind = Kind::Group;
        group.visibility = None;
        let member = Standing::Member(Role::Member);
        assert!(may_add(member, &group, Role::Member, 1).is_ok());
        assert!(matches!(may_add(member, &group, Role::Member, GROUP_MAX_MEMBERS), Err(Error::TooManyMembers(50))));
        assert!(may_update(member, &group, true, false, None).is_ok());
        assert!(may_remove(member, &group, Role::Member, true).is_ok());
        assert!(matches!(may_remove(member, &group, Role::Member, false), Err(Error::Forbidden(_))));
        assert!(matches!(may_delete(member, &group), Err(Error::Forbidden(_))));
    }
}
