// The `xmlrpc` package ships no types; the codec tests use it only as an independent peer,
// so its exports stay `unknown` and each test states the one signature it relies on.

declare module "xmlrpc/lib/serializer.js" {
  export const serializeMethodCall: unknown;
  export const serializeMethodResponse: unknown;
  export const serializeFault: unknown;
}

declare module "xmlrpc/lib/deserializer.js" {
  const Deserializer: unknown;
  export default Deserializer;
}
