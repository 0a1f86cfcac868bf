"""The real counterparts that the tests (`tests/`) and the benchmarks (`bench/`) run against: a real
`livekit-server --dev` with its own real Redis (`livekit_server`), real participants joining it over loopback
WebRTC with the `livekit` real-time SDK (`participants`), real `livekit-agents` workers (`agents`), and the
helpers for their processes (`processes`).

Not part of the package: it lives at the root of the repository beside `tests/` and `bench/`, imports pytest
nowhere (a counterpart that cannot run raises `Unavailable`; the tests decide to skip or fail), and the wheel
holds `livekit_mcp` alone.
"""
