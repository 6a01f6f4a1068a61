"""Local fakes of the campaign tools' APIs, faithful to the vendors' documented APIs: real HTTP
servers on 127.0.0.1 that the destinations' real transports talk to, with fault injection and
state inspection from Python."""
