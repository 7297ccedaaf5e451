// The generation of Microsoft's client and event-handler SDKs the suite runs against. Both are in
// use, so CI runs the suite twice (tests/sdk/CMakeLists.txt):
//   HUBCAST_SDK_GENERATION=1.0  @azure/web-pubsub-client 1.0.4, @azure/web-pubsub-express 1.0.6
//                               (installed under the npm aliases web-pubsub-client-1-0 and
//                               web-pubsub-express-1-0)
//   anything else               @azure/web-pubsub-client 1.1.0, @azure/web-pubsub-express 1.1.0
// Tests of features only 1.1 has (invokeEvent, group streams, gp.joined/left) skip under 1.0:
// `test(name, { skip: !SDK_1_1 }, ...)`.

export const SDK_GENERATION = process.env.HUBCAST_SDK_GENERATION === "1.0" ? "1.0" : "1.1";
export const SDK_1_1 = SDK_GENERATION === "1.1";

const client = SDK_1_1
  ? await import("@azure/web-pubsub-client")
  : await import("web-pubsub-client-1-0");
const handler = SDK_1_1
  ? await import("@azure/web-pubsub-express")
  : await import("web-pubsub-express-1-0");

export const {
  WebPubSubClient,
  WebPubSubJsonProtocol,
  WebPubSubJsonReliableProtocol,
  SendMessageError,
} = client;
// 1.1 only (undefined under 1.0).
export const InvocationError = client.InvocationError;
export const { WebPubSubEventHandler } = handler;
