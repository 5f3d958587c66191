// PM2 process file, as the subnet's base miner is run:
//   pm2 start deploy/ecosystem.config.js && pm2 save
//   pm2 logs sv-miner
// `pm2 reload` restarts the process; `kill -HUP` on its pid reloads the model only.
// sv-loop runs the improvement loop once a day at 03:00 (`cron_restart`); it exits
// when the cycle ends, and a run killed part way is continued by the next one.
// `sv-trainer loop --example-config > loop.toml` writes its config; HF_TOKEN comes
// from the environment pm2 was started in.
module.exports = {
  apps: [
    {
      name: "sv-miner",
      script: "sv-miner",
      args: "serve --config deploy/miner.toml",
      interpreter: "none",
      autorestart: true,
      restart_delay: 5000,
      max_restarts: 5,
      min_uptime: "60s",
      kill_timeout: 10000,
    },
    {
      name: "sv-loop",
      script: "sv-trainer",
      args: "loop --config loop.toml",
      interpreter: "none",
      autorestart: false,
      cron_restart: "0 3 * * *",
    },
  ],
};
