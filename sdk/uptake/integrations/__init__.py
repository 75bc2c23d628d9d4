"""One-line framework integrations; each module imports its framework only when used.

- ``uptake.integrations.wsgi.UptakeMiddleware(app, identify=fn)``: any WSGI app.
- ``uptake.integrations.asgi.UptakeMiddleware(app, identify=fn)``: any ASGI app
  (Starlette, FastAPI, Django's ASGI handler ...).
- ``uptake.integrations.django``: ``"uptake.integrations.django.UptakeMiddleware"`` in
  ``MIDDLEWARE``; logins and logouts from Django's auth signals.
- ``uptake.integrations.flask.Uptake(app, identify=fn)``: a Flask extension.
- ``uptake.integrations.fastapi``: the ASGI middleware and ``track_feature()``, a
  route dependency.
- ``uptake.integrations.celery.install(app)``: tasks run under their producer's identity.

What they share (``uptake.integrations._web``): the identity a request binds lives in the
request's own context and is cleared when the response is done, also after an error, at
the end of a streaming body and when a websocket closes; an identified request belongs to
a *visit*, one uptake session whose id comes from the framework's session cookie.
"""

__all__: list[str] = []
