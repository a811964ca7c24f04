"""Team roles: who may label, who settles disagreements and edits guidelines, who runs the project.

Used only when the app has sign-in configured (team mode); without it there
is one person and no role is asked for. Three roles, each allowed what the
one before it is, and more:

* ``annotator``: label, see the queue and the analysis pages;
* ``adjudicator``: also settle disagreements and edit the guidelines;
* ``admin``: also New project, Retrain, cancelling jobs, exports and roles.

:data:`PERMISSIONS` is the one table of which action needs which role; the
app checks it before every write, not only when drawing a button. Roles live
in the ``roles`` table (revision 0008), one row per person, keyed by the
signed-in identity (an email, lower-cased, or the provider's ``sub``). The
first admins are named by a setting (``RRRA_ADMINS`` or ``[rrra] admins``);
they are admins whatever the table says, so a team can never lock itself out.
Every grant and revoke is also written to the audit record (``db.audit``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import CheckConstraint, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .audit import record_action
from .engine import write_transaction
from .errors import AnnotationError
from .models import ANNOTATOR_LEN, Base, UTCDateTime, utcnow

__all__ = [
    "ROLES",
    "PERMISSIONS",
    "Role",
    "allowed",
    "required_role",
    "person_key",
    "parse_admins",
    "get_role",
    "set_role",
    "revoke_role",
    "list_roles",
    "adjudicators",
]

#: Lowest to highest: a role may do everything the roles before it may.
ROLES = ("annotator", "adjudicator", "admin")

#: Which role an action needs at least.
PERMISSIONS: dict[str, str] = {
    "view": "annotator",  # any page but those below
    "label": "annotator",
    "adjudicate": "adjudicator",
    "edit_guidelines": "adjudicator",
    "new_project": "admin",  # the New project page and the demo build
    "retrain": "admin",
    "cancel_job": "admin",
    "export": "admin",
    "manage_roles": "admin",
}


def required_role(action: str) -> str:
    """The least role that may do ``action``; ``KeyError`` for an action the table does not name."""
    return PERMISSIONS[action]


def allowed(role: str | None, action: str) -> bool:
    """Whether ``role`` (``None``: no role) may do ``action``."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(required_role(action))


def person_key(name: str) -> str:
    """How a person is keyed: stripped, and an email lower-cased (providers differ in how they case it)."""
    name = name.strip()
    return name.lower() if "@" in name else name


def parse_admins(value: str | Iterable[str] | None) -> frozenset[str]:
    """The admins a setting names: a comma- or space-separated string, or a list of names."""
    if value is None:
        return frozenset()
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v) for v in value]
    return frozenset(person_key(v) for v in items if v.strip())


class Role(Base):
    """One person's role in the team."""

    __tablename__ = "roles"
    __table_args__ = (CheckConstraint("role IN ('annotator', 'adjudicator', 'admin')", name="role"),)

    person: Mapped[str] = mapped_column(String(ANNOTATOR_LEN), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str | None] = mapped_column(String(ANNOTATOR_LEN))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"Role({self.person!r}, {self.role!r}, by={self.granted_by!r})"


def get_role(session: Session, person: str, admins: Iterable[str] = ()) -> str | None:
    """``person``'s role: ``admin`` when the setting names them, else the table's, else ``None``."""
    key = person_key(person)
    if key in parse_admins(admins):
        return "admin"
    return session.scalar(select(Role.role).where(Role.person == key))


def _check_person(person: str) -> str:
    key = person_key(person) if isinstance(person, str) else ""
    if not key:
        raise AnnotationError("a role needs a person (their sign-in email)")
    if len(key) > ANNOTATOR_LEN:
        raise AnnotationError(f"a person's name is at most {ANNOTATOR_LEN} characters")
    return key


def set_role(session: Session, person: str, role: str, granted_by: str) -> Role:
    """Give ``person`` the role ``role`` (replacing theirs), recorded as granted by ``granted_by``; commits."""
    key = _check_person(person)
    if role not in ROLES:
        raise AnnotationError(f"unknown role {role!r}; one of {', '.join(ROLES)}")

    def work() -> Role:
        row = session.get(Role, key)
        if row is None:
            row = Role(person=key)
            session.add(row)
        row.role, row.granted_by, row.granted_at = role, granted_by, utcnow()
        record_action(session, granted_by, "role_grant", key, {"role": role}, commit=False)
        return row

    return write_transaction(session, work)


def revoke_role(session: Session, person: str, revoked_by: str) -> bool:
    """Take ``person``'s role away (they may sign in but see nothing); whether they had one. Commits."""
    key = _check_person(person)

    def work() -> bool:
        row = session.get(Role, key)
        if row is None:
            return False
        session.delete(row)
        record_action(session, revoked_by, "role_revoke", key, {"role": row.role}, commit=False)
        return True

    return write_transaction(session, work)


def list_roles(session: Session) -> list[Role]:
    """Everyone with a role in the table, by name (the setting's admins are not rows)."""
    return list(session.scalars(select(Role).order_by(Role.person)))


def adjudicators(session: Session, admins: Iterable[str] = ()) -> set[str]:
    """Everyone who may settle disagreements: the table's adjudicators and admins, and the setting's admins."""
    rows = session.scalars(select(Role.person).where(Role.role.in_(("adjudicator", "admin"))))
    return set(rows) | set(parse_admins(admins))
