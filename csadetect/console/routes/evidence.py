"""Evidence with the reviewer-wellness safeguards: the blurred greyscale view made on the server,
the reveal (a CSRF POST, audited before anything is shown, counted against the break reminder)
that hands out a short-lived link for this session only, the one-time link itself, and the break.
Every fetch of evidence, blurred or clear, is audited (``view_blurred``, ``fetch_evidence``) before
anything is decrypted; a spent or foreign link is a refusal (410, audited by ``app.py``)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from csadetect.console import evidence as ev
from csadetect.console.deps import ConsoleDep, CsrfDep, Refused, SessionDep, load_report, open_evidence

router = APIRouter()
VIDEO_TYPES = ("video/mp4", "video/webm", "video/ogg")


@router.get("/reports/{report_id}/evidence/blurred")
def blurred(report_id: str, ctx: SessionDep, console: ConsoleDep):
    row = load_report(console, report_id)
    console.audit(ctx.username, "view_blurred", report_id)
    opened = open_evidence(console, row)
    if opened.kind != "image":
        raise HTTPException(404, "no picture to show")
    try:
        png = ev.blurred_image(opened.content, console.config.max_pixels)
    except ev.EvidenceUnavailable as exc:
        raise HTTPException(409, f"evidence unavailable: {exc}") from None
    return Response(png, media_type="image/png")


@router.post("/reports/{report_id}/reveal")
def reveal(report_id: str, ctx: CsrfDep, console: ConsoleDep):
    config = console.config
    row = load_report(console, report_id)
    if ctx.exposures - ctx.break_base >= config.break_after_reveals:
        return JSONResponse({"error": "break_due", "exposures": ctx.exposures,
                             "break_after": config.break_after_reveals}, status_code=409)
    opened = open_evidence(console, row)
    console.audit(ctx.username, "reveal_evidence", report_id)  # before anything is shown
    counts = console.store.add_exposure(ctx.token_hash)
    token = console.grant(ctx.token_hash, report_id, reusable=opened.kind == "video")
    return {"url": f"/evidence/{token}", "kind": opened.kind, "mime": opened.mime,
            "seconds": config.reveal_seconds, "exposures": counts["exposures"],
            "break_due": counts["exposures"] - counts["break_base"] >= config.break_after_reveals,
            "break_after": config.break_after_reveals}


@router.get("/evidence/{token}")
def clear_evidence(token: str, ctx: SessionDep, console: ConsoleDep):
    grant = console.redeem(ctx.token_hash, token)
    if grant is None:
        raise Refused(410, "this evidence link has expired: reveal again", "link_expired")
    row = load_report(console, grant.report_id)
    console.audit(ctx.username, "fetch_evidence", grant.report_id)
    opened = open_evidence(console, row)
    if opened.kind == "image":
        try:
            return Response(ev.clear_image(opened.content, console.config.max_pixels), media_type="image/png")
        except ev.EvidenceUnavailable as exc:
            raise HTTPException(409, f"evidence unavailable: {exc}") from None
    if opened.kind == "conversation":
        return JSONResponse(ev.conversation_texts(opened.conversation))
    if opened.kind in ("text", "other"):
        return JSONResponse(ev.plain_text_view(opened.content)[1])
    if opened.kind == "video":
        mime = opened.mime if opened.mime in VIDEO_TYPES else "application/octet-stream"
        return Response(opened.content, media_type=mime, headers={"Content-Disposition": "inline"})
    raise HTTPException(404, "nothing to show")


@router.post("/break")
def take_break(ctx: CsrfDep, console: ConsoleDep):
    console.store.acknowledge_break(ctx.token_hash)
    return {"ok": True}
