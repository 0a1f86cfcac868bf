"""Benchmarks of livekit-mcp against its floor, printed as ratios measured side by side in one run."""
