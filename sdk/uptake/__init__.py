"""uptake: local product-usage tracking. (The full SDK surface lands with issue 2.)"""

from uptake._model import Event

__all__ = ["Event"]
