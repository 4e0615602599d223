//! Traffic routers with no data plane here, end to end on the local control plane: the real
//! controller moves a canary through the router's objects, and each test checks the objects
//! it leaves at each weight and after promotion (no proxy follows them, so no request is
//! counted). One module per router; each test has its own namespace and controller.

mod support;

#[path = "routers/alb.rs"]
mod alb;
