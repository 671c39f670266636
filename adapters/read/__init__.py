"""The read side: queries over the read models, the usage reader, and time travel over the
event store itself."""
