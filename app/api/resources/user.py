"""/api/v1/users: any logged-in user may look; owners and admins may change."""

from flask_openapi3 import APIBlueprint, Tag

from app.auth.decorators import login_required
from app.auth.jwt import current_caller, current_claims
from app.auth.tokens import BEARER_SECURITY, FAMILY_CLAIM
from app.core.errors import errors
from app.core.openapi import view_name
from app.schemas.user import UserListQuery, UserPage, UserPath, UserPrivate, UserUpdate, UserView, present_user
from app.services import users as user_service

users = APIBlueprint(
    "users",
    __name__,
    url_prefix="/api/v1/users",
    abp_tags=[Tag(name="users")],
    abp_security=BEARER_SECURITY,
    operation_id_callback=view_name,
)


@users.get("", responses={200: UserPage, **errors(401, 422)})
@login_required
def list_users(query: UserListQuery):
    """List users, a page at a time"""
    viewer = current_caller()
    page = user_service.list_users(viewer=viewer, page=query.page, per_page=query.per_page, q=query.q, sort=query.sort)
    return UserPage.present(page, viewer=viewer).model_dump(mode="json")


@users.get("/me", responses={200: UserPrivate, **errors(401)})
@login_required
def get_me():
    """The caller's own account"""
    caller = current_caller()  # read with the token's check: no second query
    return present_user(caller, viewer=caller).model_dump(mode="json")


@users.get("/<int:user_id>", responses={200: UserView, **errors(401, 404, 422)})
@login_required
def get_user(path: UserPath):
    """One user: the whole record for its owner and admins, public fields for others"""
    user = user_service.show_user(user_id=path.user_id)
    return present_user(user, viewer=current_caller()).model_dump(mode="json")


@users.put("/<int:user_id>", responses={200: UserPrivate, **errors(400, 401, 403, 404, 409, 413, 422, 429)})
@login_required
def update_user(path: UserPath, body: UserUpdate):
    """Change some fields of a user"""
    user = user_service.update_user(
        viewer=current_caller(),
        user=user_service.get_user(user_id=path.user_id),
        changes=body.model_dump(exclude_unset=True),
        current_family_id=current_claims()[FAMILY_CLAIM],
    )
    return present_user(user, viewer=current_caller()).model_dump(mode="json")


@users.delete("/<int:user_id>", responses={204: None, **errors(401, 403, 404, 409, 422)})
@login_required
def delete_user(path: UserPath):
    """Delete a user"""
    user_service.delete_user(viewer=current_caller(), user=user_service.get_user(user_id=path.user_id))
    return "", 204
