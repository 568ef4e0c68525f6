"""HTTP routes: decode, call one service function, encode."""
