"""Local fakes of the campaign tools' APIs, faithful to /work/shared/campaign-apis.md: real HTTP
servers on 127.0.0.1 that the destinations' real transports talk to, with fault injection and
state inspection from Python."""
