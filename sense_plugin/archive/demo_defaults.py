"""The demo's defaults in one place (SPEC §12): its devices, picture, segments and bit rates.

Plain values, no imports: the configuration, the demo generators, the synthetic live source
and the command line all read them from here.
"""

from __future__ import annotations

#: The devices added when ``[archive] demo = true`` and no ``[[devices]]`` are configured
#: (the ids and names of the shipped default configuration).
DEMO_DEVICES = (
    {"deviceid": "9890179877273119875", "name": "Entrance"},
    {"deviceid": "9890179877273119876", "name": "Parking"},
    {"deviceid": "9890179877273119877", "name": "Lobby"},
)
