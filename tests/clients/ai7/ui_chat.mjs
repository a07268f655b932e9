// Runs ../ui_chat_client.mjs with the `ai` package pinned in this directory.
import * as ai from "ai";
import { main } from "../ui_chat_client.mjs";

await main(ai);
