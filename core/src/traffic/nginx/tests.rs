//! NGINX router tests (Argo nginx_test.go cases).
