//! The JMESPath runtime variables are evaluated with: JMESPath's built-in functions and the
//! Kyverno functions verify-images policies use.
