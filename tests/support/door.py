"""The emulator's front door for tests: an ASGI wrapper that counts the public API
requests that actually reached the emulator (by the emulator's own endpoint names, as
its fault rules use them) and the status each was answered with."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.emulator.faults import endpoint_of


class Door:
    """The emulator app behind a counter of the public API requests that reached it:
    (the emulator's endpoint name, the status answered), in order of arrival."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = endpoint_of(scope.get("method", ""), scope.get("path", ""))
        if scope["type"] != "http" or name is None:
            await self.app(scope, receive, send)
            return

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((name, message["status"]))
            await send(message)

        await self.app(scope, receive, answer)

    def count(self, endpoint: str | None = None, status: int | None = None) -> int:
        """Requests that reached the emulator (at `endpoint`, answered `status`)."""
        return sum(
            1 for name, code in self.seen if endpoint in (None, name) and status in (None, code)
        )

    def clear(self) -> None:
        self.seen.clear()
