pub(crate) mod app;
pub(crate) mod cli;
pub(crate) mod dr;
pub(crate) mod e2e;
pub(crate) mod fixtures;
pub(crate) mod spec;

/// A TCP port free on 127.0.0.1 now (the OS picks it): the one helper every test that starts
/// a server uses. Another process may take it before the server binds; servers started on it
/// retry on another port when that happens.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A printer whose output the test does not look at (it is captured, never on the terminal).
pub(crate) fn ui() -> skyplan::printer::Printer {
    skyplan::printer::Printer::captured().0
}
