// Test preload: services (Postgres, Redis) start lazily through mvp_core/testing/services.ts.
export {};
