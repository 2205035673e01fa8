"""The Deepgram live protocol without I/O: errors, query parameters, model routing,
authentication, control messages and server frames."""
