//! ferrovs configuration model and parsers (see issue 3).
