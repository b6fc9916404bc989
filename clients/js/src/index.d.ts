// Types of @sluice-dev/client. The JavaScript beside this file is the
// implementation; these declarations describe it and are checked against
// a program that uses every call (tests/node/client-types.test.js).

/** An OpenAI-style error object, as Sluice sends it. */
export interface ErrorObject {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/**
 * An error that Sluice reported (an HTTP status with its error object, or an
 * error event that ended a stream: status 0), or one of the client's own:
 * code 'expired' (the stream is no longer kept, status 404), 'network'
 * (ConnectionError) or 'invalid_event' (an event that is not a chunk).
 */
export class SluiceError extends Error {
  constructor(
    message: string,
    options?: {
      status?: number;
      code?: string | null;
      type?: string | null;
      param?: string | null;
      error?: ErrorObject | null;
      retryAfter?: number;
      cause?: unknown;
    },
  );
  /** The HTTP status; 0 for an error event in a stream or a network failure. */
  status: number;
  code: string | null;
  type: string | null;
  param: string | null;
  /** The error object as Sluice sent it, or null. */
  error: ErrorObject | null;
  /** Milliseconds the server asked to wait (Retry-After), 0 if it did not. */
  retryAfter: number;
}

/** Sluice could not be reached, or the connection stayed down: code 'network'. */
export class ConnectionError extends SluiceError {
  constructor(message: string, options?: { cause?: unknown });
  code: 'network';
}

/** How streams reconnect. Every field is optional where a policy is given. */
export interface RetryPolicy {
  /** Milliseconds before the first reconnect (250). */
  initialDelay: number;
  /** The longest wait between reconnects (10 000); the server's retry: lowers it. */
  maxDelay: number;
  /** Reconnects in a row without an event before giving up (12; Infinity for subscriptions). */
  maxAttempts: number;
  /** Milliseconds without a byte, heartbeats included, before a connection is given up (45 000). */
  idleTimeout: number;
}

export const defaultRetry: Readonly<RetryPolicy>;

/** The wait before reconnect number attempt: exponential, capped, with equal jitter. */
export function backoff(attempt: number, limits: Pick<RetryPolicy, 'initialDelay' | 'maxDelay'>, random?: () => number): number;

/** One Server-Sent Event. */
export interface SSEEvent {
  /** The stream's last event ID when the event was dispatched. */
  id: string;
  /** 'message' unless the event was named. */
  event: string;
  data: string;
}

export interface Parser {
  /** Feeds the next piece of decoded text, split anywhere. */
  feed(text: string): void;
}

/** A WHATWG event-stream parser. */
export function createParser(callbacks?: {
  onEvent?: (event: SSEEvent) => void;
  onRetry?: (ms: number) => void;
  onComment?: (text: string) => void;
}): Parser;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer' | (string & {});
  content: string | null | unknown[];
  [field: string]: unknown;
}

/** An OpenAI chat completion request; stream is always set to true. */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  /**
   * A conversation the server keeps: the model reads its stored branch
   * first, the request's messages are stored, and the answer is stored as
   * it streams. Sluice's extra field.
   */
  conversation?: string | { id: string };
  /** The message the request's messages go under (default: the conversation's current_id). Empty messages and a user message here: answer it again. */
  parent_id?: string;
  [field: string]: unknown;
}

/** An OpenAI chat.completion.chunk. */
export interface ChatChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: string; content?: string | null; reasoning_content?: string | null; [field: string]: unknown };
    finish_reason: string | null;
    [field: string]: unknown;
  }>;
  usage?: Usage | null;
  [field: string]: unknown;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  [field: string]: unknown;
}

export type StreamState = 'open' | 'resumed' | 'reconnecting' | 'closed';

export interface StateInfo {
  /** The chat stream's ID, once known (chat streams only). */
  id?: string | null;
  /** 'open', 'resumed': where the stream goes on from. */
  lastEventId?: string;
  /** 'reconnecting': the attempt (1, 2, … in a row without an event), the wait, and why. */
  attempt?: number;
  delay?: number;
  reason?: string;
  /** 'closed': how it ended. */
  status?: string;
}

export type ChatStatus = 'done' | 'cancelled' | 'error' | 'expired' | 'failed' | 'aborted';

export interface ChatResult {
  status: ChatStatus;
  text: string;
  finishReason: string | null;
  usage: Usage | null;
  /** Why it ended, for every status but 'done' and 'aborted' (and 'cancelled' by stop()). */
  error?: SluiceError;
}

export interface ChatOptions {
  onOpen?: (stream: ChatStream) => void;
  /** New answer text. */
  onDelta?: (text: string, chunk: ChatChunk, stream: ChatStream) => void;
  /** Every chunk, with or without text. */
  onChunk?: (chunk: ChatChunk, stream: ChatStream) => void;
  onState?: (state: StreamState, info: StateInfo) => void;
  /** Aborts reading (the answer goes on on the server); done then says 'aborted'. */
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
  /** The server stops the answer when this client's connection drops, rather than keep it for a resume. */
  cancelOnDisconnect?: boolean;
}

export interface AttachOptions extends Omit<ChatOptions, 'cancelOnDisconnect'> {
  /** The answer text already shown, so that stream.text stays the whole answer. */
  text?: string;
}

/** One chat answer being read; iterate it for its chunks. */
export class ChatStream implements AsyncIterable<ChatChunk> {
  private constructor();
  /** The stream ID, once Sluice has named it. */
  readonly id: string | null;
  /** For a chat in a conversation: the conversation, and the assistant message being stored (null otherwise, and after attach). */
  readonly conversationId: string | null;
  readonly messageId: string | null;
  /** The ID of the last event read: keep it beside text to attach after a reload. */
  readonly lastEventId: string;
  /** The answer so far. */
  readonly text: string;
  readonly finishReason: string | null;
  readonly usage: Usage | null;
  /** null until the stream has ended. */
  readonly status: ChatStatus | null;
  /** Resolves, never rejects, once the stream has ended. */
  readonly done: Promise<ChatResult>;
  /** Stops the answer on the server, and reads on to its closing event. */
  stop(): void;
  /** Stops reading, without stopping the answer on the server. */
  abort(): void;
  [Symbol.asyncIterator](): AsyncIterator<ChatChunk, undefined>;
}

/** One event of a topic. event is 'message', a name the publisher gave, or 'sluice.gap'. */
export interface TopicEvent extends SSEEvent {}

/** The data of a 'sluice.gap' event. */
export interface Gap {
  reason: 'trimmed' | 'replaced';
  missed?: number;
  message: string;
}

export interface SubscribeOptions {
  /** Every event the topic keeps, then new ones. */
  from?: 'start';
  /** The events after this one. */
  lastEventId?: string;
  /** Every event, as it comes; without it, iterate the subscription. */
  onEvent?: (event: TopicEvent, subscription: Subscription) => void;
  onState?: (state: StreamState, info: StateInfo) => void;
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
}

export interface SubscriptionResult {
  status: 'closed' | 'aborted' | 'error';
  error?: SluiceError;
}

/** A subscription to a topic; iterate it for its events, unless it has onEvent. */
export class Subscription implements AsyncIterable<TopicEvent> {
  private constructor();
  readonly topic: string;
  /** The ID of the last event handed over: subscribe again from it later. */
  readonly lastEventId: string;
  /** Resolves once the server accepted the subscription; rejects if it refused. */
  readonly opened: Promise<void>;
  /** Resolves, never rejects, once the subscription has ended. */
  readonly done: Promise<SubscriptionResult>;
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<TopicEvent, undefined>;
}

export interface Model {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  description?: string;
  [field: string]: unknown;
}

export interface ClientOptions {
  /** The server's origin; '' (the default) is the page's own. */
  baseURL?: string;
  /** Sent as Authorization: Bearer. */
  apiKey?: string;
  headers?: Record<string, string>;
  retry?: Partial<RetryPolicy>;
  fetch?: typeof fetch;
}

/** One content part of a message. */
export interface ContentPart {
  type: 'input_text' | 'output_text' | 'text' | (string & {});
  text: string;
  annotations?: unknown[];
  [field: string]: unknown;
}

export type ItemStatus = 'in_progress' | 'completed' | 'cancelled' | 'failed' | 'interrupted';

/** A conversation, as Sluice keeps it (OpenAI's shape, with Sluice's extra fields). */
export interface Conversation {
  id: string;
  object: 'conversation';
  created_at: number;
  metadata: Record<string, string>;
  title: string;
  updated_at: number;
  /** The message last added, or null. */
  current_id: string | null;
  [field: string]: unknown;
}

/** A message of a conversation. */
export interface ConversationItem {
  type: 'message';
  id: string;
  status: ItemStatus;
  role: 'user' | 'assistant' | 'system' | 'developer';
  content: ContentPart[];
  /** null for a first message; siblings (a regenerated answer) share it. */
  parent_id: string | null;
  created_at: number;
  /** Assistant messages: */
  model?: string;
  /** The generation that writes it: attach to it while it is in_progress. */
  stream_id?: string;
  usage?: Usage;
  error?: { code: string; kind?: string; message: string };
  [field: string]: unknown;
}

/** A message to store: content as a string or as parts. */
export interface ItemInput {
  type?: 'message';
  role: 'user' | 'assistant' | 'system' | 'developer';
  content: string | ContentPart[];
  parent_id?: string;
}

/** One page of a list; iterate it with for await for its objects and those of the pages after it. */
export class Page<T> implements AsyncIterable<T> {
  private constructor();
  readonly data: T[];
  readonly hasMore: boolean;
  readonly firstId: string | null;
  readonly lastId: string | null;
  nextPage(): Promise<Page<T> | null>;
  [Symbol.asyncIterator](): AsyncIterator<T>;
}

/** The data of a change feed event. */
export interface ConversationEvent {
  type: 'conversation.created' | 'conversation.updated' | 'conversation.deleted';
  id: string;
  updated_at: number;
}

export class ConversationItems {
  private constructor();
  list(id: string, options?: { limit?: number; after?: string; order?: 'asc' | 'desc'; signal?: AbortSignal }): Promise<Page<ConversationItem>>;
  create(id: string, items: ItemInput[], options?: { signal?: AbortSignal }): Promise<Page<ConversationItem>>;
  retrieve(id: string, itemId: string, options?: { signal?: AbortSignal }): Promise<ConversationItem>;
  delete(id: string, itemId: string, options?: { signal?: AbortSignal }): Promise<Conversation>;
}

/** The conversations the server keeps: SluiceClient.conversations. */
export class Conversations {
  private constructor();
  readonly items: ConversationItems;
  create(body?: { items?: ItemInput[]; title?: string; metadata?: Record<string, string> }, options?: { signal?: AbortSignal }): Promise<Conversation>;
  retrieve(id: string, options?: { signal?: AbortSignal }): Promise<Conversation>;
  update(id: string, body: { title?: string; metadata?: Record<string, string> }, options?: { signal?: AbortSignal }): Promise<Conversation>;
  /** keepalive: the request outlives a page that is closing. */
  delete(id: string, options?: { signal?: AbortSignal; keepalive?: boolean }): Promise<{ id: string; object: 'conversation.deleted'; deleted: true }>;
  /** The caller's conversations, most recently changed first; q searches titles and messages. */
  list(options?: { limit?: number; after?: string; q?: string; signal?: AbortSignal }): Promise<Page<Conversation>>;
  export(id: string, options?: { format?: 'json' | 'markdown'; signal?: AbortSignal }): Promise<string>;
  /** The change feed: each event's data is a ConversationEvent as JSON. */
  events(options?: Omit<SubscribeOptions, 'from'>): Subscription;
}

/** The text of a message: its parts' text, joined. */
export function itemText(item: Pick<ConversationItem, 'content'> | { content: string | ContentPart[] }): string;

export class SluiceClient {
  constructor(options?: ClientOptions);
  readonly conversations: Conversations;
  /** The whole retry policy of a call: the defaults, the client's, then over. */
  retryPolicy(over?: Partial<RetryPolicy>): RetryPolicy;
  baseURL: string;
  apiKey: string;
  headers: Record<string, string>;
  retry: Partial<RetryPolicy>;
  fetch: typeof fetch;
  url(path: string): string;
  requestHeaders(extra?: Record<string, string>): Record<string, string>;
  models(options?: { signal?: AbortSignal }): Promise<Model[]>;
  chat(body: ChatRequest, options?: ChatOptions): ChatStream;
  attach(id: string, lastEventId?: string, options?: AttachOptions): ChatStream;
  cancel(id: string, options?: { signal?: AbortSignal }): Promise<{ id: string; object: 'stream'; status: string }>;
  subscribe(topic: string, options?: SubscribeOptions): Subscription;
  publish(topic: string, data: unknown, options?: { event?: string; signal?: AbortSignal }): Promise<{ id: string; topic: string; object: 'topic.event' }>;
}
