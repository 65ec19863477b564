// Express + express-session + connect-redis: the Node peer for latch's HTTP
// benchmarks (issue 5). POST /login creates a session, GET /whoami reads it.
//   SESSION_SECRET=… PORT=18991 NODE_ENV=production node server.js
import express from "express"
import session from "express-session"
import {RedisStore} from "connect-redis"
import {createClient} from "redis"

const secret = process.env.SESSION_SECRET
if (!secret || secret.length < 32) {
  console.error("SESSION_SECRET must be set (at least 32 characters)")
  process.exit(2)
}
const host = process.env.HOST || "127.0.0.1"
const port = Number(process.env.PORT || 18991)
const redisURL = process.env.REDIS_URL || "redis://127.0.0.1:6379"

const redisClient = createClient({url: redisURL})
redisClient.on("error", (err) => console.error("redis:", err))
await redisClient.connect()

const app = express()
app.disable("x-powered-by")
app.use(
  session({
    store: new RedisStore({client: redisClient, prefix: "latchbench:sess:"}),
    secret,
    resave: false,
    saveUninitialized: false,
    rolling: false,
    cookie: {httpOnly: true, sameSite: "lax", maxAge: 24 * 60 * 60 * 1000},
  }),
)

app.post("/login", (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err)
    req.session.user = "alice"
    res.json({user: req.session.user})
  })
})

app.get("/whoami", (req, res) => {
  if (!req.session.user) return res.status(401).json({error: "unauthenticated"})
  res.json({user: req.session.user})
})

app.listen(port, host, () => console.log(`listening on http://${host}:${port}`))
