// @sluice-dev/client: Sluice's client for browsers, Node, Deno and Bun.
// Chat answers that resume by themselves across drops and reloads, topics
// to follow and publish to, the conversations the server keeps, and the
// model list, on fetch, ReadableStream, AbortSignal and TextDecoder alone.

export { SluiceClient } from './client.js';
export { ChatStream } from './chat.js';
export { Subscription } from './topic.js';
export { Conversations, ConversationItems, Page, itemText } from './conversations.js';
export { SluiceError, ConnectionError } from './errors.js';
export { backoff, defaultRetry } from './follow.js';
export { createParser } from './parse.js';
