"""``/v1/session``: the desk's sign-in (token -> session cookie) and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from services.feedback import sessions
from services.feedback.auth import CHALLENGE, CurrentUser
from services.feedback.desk_models import SessionOut

router = APIRouter(prefix="/v1", tags=["session"])


@router.post("/session", status_code=status.HTTP_201_CREATED)
async def sign_in(user: CurrentUser, request: Request, response: Response) -> SessionOut:
    """Exchange your token (sent as `Authorization: Bearer`, as on every route) for an
    `HttpOnly; SameSite=Strict` session cookie, so a browser page can authenticate requests it
    cannot add a header to (`EventSource`, images). The cookie holds a random session id, never
    the token; it lasts `AHUNT_FEEDBACK_SESSION_TTL_S` and ends earlier on sign-out or when your
    tokens are revoked or rotated. Writes made with the cookie must come from this server's own
    pages (checked with the `Origin` header)."""
    if not request.headers.get("authorization"):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in with your token: Authorization: Bearer <token>",
            CHALLENGE,
        )
    settings = request.app.state.settings
    session_id = await sessions.open_session(
        request.app.state.redis, request.state.token_hash, settings.session_ttl_s
    )
    response.set_cookie(
        sessions.COOKIE,
        session_id,
        max_age=settings.session_ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return SessionOut(user=user, expires_in_s=settings.session_ttl_s)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(_user: CurrentUser, request: Request) -> Response:
    """End the desk session of this cookie (the server forgets it) and clear the cookie. With
    a bearer token and no cookie there is nothing to end: 204 all the same."""
    session_id = request.cookies.get(sessions.COOKIE)
    if session_id:
        await sessions.close_session(request.app.state.redis, session_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return response
